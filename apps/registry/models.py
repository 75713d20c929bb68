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
    """

    name = models.CharField(max_length=256, help_text="MLflow registered model name")
    version = models.PositiveIntegerField()
    run_id = models.CharField(max_length=64, blank=True)
    source = models.CharField(max_length=1024, blank=True, help_text="artifact URI")
    status = models.CharField(
        max_length=32, choices=ModelVersionStatus.choices, default=ModelVersionStatus.READY
    )
    description = models.TextField(blank=True)
    tags = models.JSONField(default=dict, blank=True)
    aliases = models.JSONField(default=list, blank=True)
    run_metrics = models.JSONField(default=dict, blank=True)
    run_params = models.JSONField(default=dict, blank=True)
    signature = models.JSONField(null=True, blank=True, help_text="{'inputs': [...], 'outputs': [...]}")
    # Prediction-score histogram at registration, the reference for drift (PSI).
    score_baseline = models.JSONField(null=True, blank=True)
    mlflow_created_at = models.DateTimeField(null=True, blank=True)
    mlflow_updated_at = models.DateTimeField(null=True, blank=True)
    deleted_upstream_at = models.DateTimeField(null=True, blank=True)
    synced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="model_version_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"

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
