"""Slipway's mirror of the MLflow model registry, the sync's bookkeeping, and alias updates.

MLflow is the source of truth for model versions; these tables are a read mirror written
only by the registry sync (apps.registry.services), plus the queue of alias updates Slipway
asks MLflow to make when releases go live or are rolled back.
"""

from django.db import models


class ModelVersionStatus(models.TextChoices):
    # The MLflow ModelVersionStatus values.
    PENDING_REGISTRATION = "PENDING_REGISTRATION", "pending registration"
    FAILED_REGISTRATION = "FAILED_REGISTRATION", "failed registration"
    READY = "READY", "ready"


class ModelVersion(models.Model):
    """Slipway's mirror of one MLflow model version.

    Rows are written by the registry sync (and by fixtures and the admin). A version that
    disappears from MLflow is kept, with ``deleted_upstream_at`` set, so releases that
    point at it keep their history; it can no longer be released.

    Two kinds of data, read at different costs: the fields MLflow returns when listing a
    model's versions (status, description, tags, aliases, times) are refreshed whenever the
    model changed; the "details" (the run's metrics and params) are read in batches once
    per version (again when its run changes, on a forced refresh, or on the periodic full
    re-read), ``details_synced_at`` null while they are owed; the artifacts (the signature
    from the MLmodel file, the score baseline) cost two downloads per version and are read
    a few versions per model per sync, aliased and newest first (and on a forced
    refresh), ``artifacts_synced_at`` null while they are owed.
    """

    name = models.CharField(max_length=256, help_text="MLflow registered model name")
    version = models.PositiveIntegerField()
    run_id = models.CharField(max_length=64, blank=True)
    source = models.CharField(max_length=1024, blank=True, help_text="artifact URI")
    status = models.CharField(
        max_length=32, choices=ModelVersionStatus.choices, default=ModelVersionStatus.READY
    )
    status_message = models.TextField(blank=True)
    description = models.TextField(blank=True)
    tags = models.JSONField(default=dict, blank=True)
    aliases = models.JSONField(default=list, blank=True)
    mlflow_user = models.CharField(max_length=256, blank=True, help_text="MLflow user_id")
    run_user = models.CharField(
        max_length=256,
        blank=True,
        help_text="the MLflow run's user_id: who trained the model (read with the details)",
    )
    current_stage = models.CharField(
        max_length=32, blank=True, help_text="MLflow's deprecated stage (None/Staging/...)"
    )
    model_id = models.CharField(max_length=64, blank=True, help_text="MLflow 3 logged model id")
    run_link = models.CharField(max_length=1024, blank=True)
    experiment_id = models.CharField(max_length=64, blank=True)
    run_metrics = models.JSONField(default=dict, blank=True)
    run_params = models.JSONField(default=dict, blank=True)
    signature = models.JSONField(
        null=True, blank=True, help_text="{'inputs': [...], 'outputs': [...]}"
    )
    # Prediction-score histogram at registration, the reference for drift (PSI).
    score_baseline = models.JSONField(null=True, blank=True)
    mlflow_created_at = models.DateTimeField(null=True, blank=True)
    mlflow_updated_at = models.DateTimeField(null=True, blank=True)
    deleted_upstream_at = models.DateTimeField(null=True, blank=True)
    synced_at = models.DateTimeField(null=True, blank=True)
    details_synced_at = models.DateTimeField(
        null=True, blank=True, help_text="when run metrics, signature and baseline were read"
    )
    details_note = models.TextField(
        blank=True, help_text="what the last details read could not find (no run, no MLmodel...)"
    )
    artifacts_synced_at = models.DateTimeField(
        null=True, blank=True, help_text="when the signature and score baseline were read"
    )

    class Meta:
        ordering = ["name", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="model_version_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"

    @property
    def trainer(self) -> str:
        """Who trained this version: the run's user, else the user who registered it."""
        return self.run_user or self.mlflow_user

    @property
    def is_releasable(self) -> bool:
        return self.status == ModelVersionStatus.READY and self.deleted_upstream_at is None

    @property
    def not_releasable_reason(self) -> str:
        if self.deleted_upstream_at is not None:
            return f"{self} was deleted from the MLflow registry"
        if self.status != ModelVersionStatus.READY:
            return f"{self} is {self.get_status_display()} in MLflow, not ready"
        return ""


class RegisteredModel(models.Model):
    """Slipway's mirror of one MLflow registered model, and the sync's state for it.

    ``mlflow_updated_at`` is MLflow's ``last_updated_timestamp`` as of the last complete
    read of the model's versions: the sync compares it with the listing and skips the
    model (no per-model calls) while it has not moved.
    """

    name = models.CharField(max_length=256, unique=True)
    description = models.TextField(blank=True)
    tags = models.JSONField(default=dict, blank=True)
    aliases = models.JSONField(default=dict, blank=True, help_text="alias -> version number")
    mlflow_created_at = models.DateTimeField(null=True, blank=True)
    mlflow_updated_at = models.DateTimeField(null=True, blank=True)
    deleted_upstream_at = models.DateTimeField(null=True, blank=True)
    # Sync bookkeeping.
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(
        null=True, blank=True, help_text="last time Slipway confirmed its copy matches MLflow"
    )
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    fully_read_at = models.DateTimeField(
        null=True, blank=True, help_text="last re-read of every version's details"
    )
    warning = models.TextField(blank=True, help_text="something the sync could not reconcile")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class RegistrySyncState(models.Model):
    """The whole-registry sync (one row): when the listing of all models last worked."""

    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    last_result = models.JSONField(default=dict, blank=True, help_text="counts of the last run")

    class Meta:
        verbose_name = "registry sync state"

    def __str__(self) -> str:
        return f"registry sync (last success {self.last_success_at})"

    @classmethod
    def load(cls) -> "RegistrySyncState":
        state, _ = cls.objects.get_or_create(pk=1)
        return state


class AliasUpdateState(models.TextChoices):
    PENDING = "pending", "Pending"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    SUPERSEDED = "superseded", "Superseded"


ALIAS_UPDATE_FINAL_STATES = frozenset(
    {AliasUpdateState.DONE, AliasUpdateState.FAILED, AliasUpdateState.SUPERSEDED}
)


class AliasUpdate(models.Model):
    """One request to point an MLflow alias (named after an environment) at a version.

    Written when a release goes live (or is rolled back) and applied to MLflow by a task
    after commit, so MLflow being down never blocks a deploy: a failed attempt stays
    ``pending`` with ``next_attempt_at`` in the future and a beat task tries again, until
    it is ``done``, ``failed`` (MLflow refused it, or too many attempts) or ``superseded``
    by a newer update of the same alias.
    """

    model_version = models.ForeignKey(
        ModelVersion, on_delete=models.PROTECT, related_name="alias_updates"
    )
    alias = models.CharField(max_length=255)
    release_uid = models.UUIDField(db_index=True, help_text="the release this update is for")
    state = models.CharField(
        max_length=16, choices=AliasUpdateState.choices, default=AliasUpdateState.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    requested_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["state", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"@{self.alias} -> {self.model_version} ({self.state})"

    @property
    def is_final(self) -> bool:
        return self.state in ALIAS_UPDATE_FINAL_STATES
