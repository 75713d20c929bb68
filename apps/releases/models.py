"""Services, environments, releases and approvals."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from apps.accounts.roles import Role
from apps.gitops.runtimes import (
    DEFAULT_KSERVE_VERSION,
    KSERVE_MODE_CHOICES,
    RUNTIME_CHOICES,
    KServeMode,
    Runtime,
)
from apps.releases.validators import validate_dns1123_label, validate_service_name

REVIEWER_ROLE_CHOICES = [
    (Role.PRODUCT_REVIEWER.value, Role.PRODUCT_REVIEWER.label),
    (Role.COMPLIANCE_REVIEWER.value, Role.COMPLIANCE_REVIEWER.label),
]


class Service(models.Model):
    """A model-serving workload: one MLflow registered model, served one way."""

    name = models.CharField(max_length=63, unique=True, validators=[validate_service_name])
    description = models.TextField(blank=True)
    owner_team = models.ForeignKey(
        "accounts.Team",
        on_delete=models.PROTECT,
        related_name="services",
        help_text="the team whose people create, promote, approve and roll back its releases",
    )
    registered_model = models.CharField(
        max_length=256, help_text="the MLflow registered model this service serves"
    )
    runtime = models.CharField(max_length=32, choices=RUNTIME_CHOICES, default=Runtime.CUSTOM)
    default_config = models.JSONField(
        default=dict,
        blank=True,
        help_text="serving configuration (image, replicas, resources, ...) for every environment",
    )
    runbook_url = models.URLField(blank=True)
    # Service-level objectives; an environment may override them (ServiceEnvironment).
    slo_p95_latency_ms = models.FloatField(null=True, blank=True, validators=[MinValueValidator(0)])
    slo_error_rate = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0), MaxValueValidator(1)],
        help_text="fraction of requests, e.g. 0.01 for 1%",
    )
    slo_cost_per_day = models.FloatField(null=True, blank=True, validators=[MinValueValidator(0)])
    slo_drift_psi = models.FloatField(null=True, blank=True, validators=[MinValueValidator(0)])
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Environment(models.Model):
    """A stage releases go through (staging, prod), with its approval policy."""

    name = models.CharField(max_length=63, unique=True, validators=[validate_dns1123_label])
    order = models.PositiveIntegerField(default=0, help_text="position in the promotion path")
    promotes_from = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="promotes_to",
        help_text="releases reach this environment by promotion from that one",
    )
    min_soak_minutes = models.PositiveIntegerField(
        default=0,
        help_text="how long a release must have been live in the source environment",
    )
    is_production = models.BooleanField(
        default=False,
        help_text="production: images must be pinned by digest",
    )
    config_overrides = models.JSONField(
        default=dict,
        blank=True,
        help_text="serving configuration applied to every service here",
    )
    auto_rollback = models.BooleanField(
        default=False,
        help_text="roll back automatically on a sustained SLO breach after a release",
    )
    bake_minutes = models.PositiveIntegerField(
        default=30,
        help_text="how long after going live the auto-rollback guard watches",
    )
    kserve_mode = models.CharField(
        max_length=16,
        choices=KSERVE_MODE_CHOICES,
        default=KServeMode.KNATIVE.value,
        help_text="KServe deployment mode of this environment's cluster: it decides the "
        "scale metric, scale to zero and whether canary traffic splitting exists",
    )
    kserve_version = models.CharField(
        max_length=16,
        default=DEFAULT_KSERVE_VERSION,
        help_text="KServe release (major.minor) installed in this environment's cluster",
    )
    trainer_may_not_approve = models.BooleanField(
        null=True,
        blank=True,
        help_text="separation of duties: the person who trained the model (the MLflow run's "
        "user) cannot approve its release here. Empty: on for production environments",
    )
    freeze_on_alerts = models.BooleanField(
        default=True,
        help_text="hold promotions into this environment while an SLO breach or drift "
        "alert is active in it (rollbacks are never held)",
    )
    shadow_evaluation = models.CharField(
        max_length=16,
        choices=[
            ("off", "Off"),
            ("optional", "Optional: ML engineers may start one before approval"),
            ("required", "Required: approval waits for a judged shadow report"),
        ],
        default="off",
        help_text="shadow evaluation of a release waiting for approval: its candidate "
        "gets a mirrored share of this environment's live traffic (answers never "
        "returned) and the report is approval evidence",
    )

    class Meta:
        ordering = ["order", "name"]

    def __str__(self) -> str:
        return self.name

    @property
    def separates_trainer(self) -> bool:
        """Whether the model's trainer is refused as an approver here."""
        if self.trainer_may_not_approve is None:
            return self.is_production
        return self.trainer_may_not_approve


class ApprovalRule(models.Model):
    """Releases into ``environment`` need ``min_count`` approvals from people in ``role``."""

    environment = models.ForeignKey(
        Environment, on_delete=models.CASCADE, related_name="approval_rules"
    )
    role = models.CharField(max_length=32, choices=REVIEWER_ROLE_CHOICES)
    min_count = models.PositiveSmallIntegerField(default=1, validators=[MinValueValidator(1)])

    class Meta:
        ordering = ["environment", "role"]
        constraints = [
            models.UniqueConstraint(fields=["environment", "role"], name="approval_rule_unique"),
            models.CheckConstraint(condition=Q(min_count__gte=1), name="approval_rule_min_count"),
        ]

    def __str__(self) -> str:
        return f"{self.environment}: {self.min_count} x {self.role}"


class ServiceEnvironment(models.Model):
    """A service in one environment: its overrides and what Argo CD last said about it."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="targets")
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="targets")
    config_overrides = models.JSONField(default=dict, blank=True)
    slo_p95_latency_ms = models.FloatField(null=True, blank=True, validators=[MinValueValidator(0)])
    slo_error_rate = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0), MaxValueValidator(1)]
    )
    slo_cost_per_day = models.FloatField(null=True, blank=True, validators=[MinValueValidator(0)])
    slo_drift_psi = models.FloatField(null=True, blank=True, validators=[MinValueValidator(0)])
    # Last observation of the Argo CD Application <service>-<environment>.
    sync_status = models.CharField(max_length=32, blank=True)
    health_status = models.CharField(max_length=32, blank=True)
    health_since = models.DateTimeField(
        null=True, blank=True, help_text="when health_status last changed"
    )
    synced_revision = models.CharField(max_length=64, blank=True)
    status_message = models.TextField(blank=True)
    status_observed_at = models.DateTimeField(null=True, blank=True)
    # Repository drift (not the data drift of metrics): the service folder at the synced
    # revision checked against the live release's approved digest (releases.repo_drift).
    # The last check's inputs: the same revision and digest again are not read again.
    drift_checked_revision = models.CharField(max_length=64, blank=True)
    drift_checked_digest = models.CharField(max_length=64, blank=True)
    # Set while the folder differs from what was approved; "" when it matches.
    drift_revision = models.CharField(
        max_length=64,
        blank=True,
        help_text="synced revision whose folder differs from the approval",
    )
    drift_commit = models.CharField(
        max_length=64, blank=True, help_text="newest commit that changed the folder"
    )
    drift_commit_summary = models.CharField(max_length=300, blank=True)
    drift_files = models.JSONField(
        default=dict, blank=True, help_text="file names changed, added and removed"
    )
    drift_detected_at = models.DateTimeField(null=True, blank=True)
    # Kept by the metrics poll: some metric the fleet shows (metrics.catalog.FLEET_METRICS)
    # has a latest value here. The fleet ranks 5,000 targets on it; finding them in the
    # latest values took a DISTINCT over every row of them on each render.
    has_metrics = models.BooleanField(
        default=False, help_text="a latest value of a metric the fleet shows exists"
    )

    class Meta:
        ordering = ["service__name", "environment__order"]
        constraints = [
            models.UniqueConstraint(
                fields=["service", "environment"], name="service_environment_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.service.name}-{self.environment.name}"

    @property
    def application_name(self) -> str:
        """The Argo CD Application the ApplicationSet generates for this folder."""
        return f"{self.service.name}-{self.environment.name}"

    @property
    def drifted(self) -> bool:
        """The synced folder differs from the live release's approved files."""
        return bool(self.drift_revision)

    def slo(self) -> dict[str, float | None]:
        """Effective SLO thresholds: this environment's override, else the service's."""
        return effective_thresholds(
            {name: getattr(self, f"slo_{name}") for name in SLO_NAMES},
            {name: getattr(self.service, f"slo_{name}") for name in SLO_NAMES},
        )


SLO_NAMES = ("p95_latency_ms", "error_rate", "cost_per_day", "drift_psi")


def effective_thresholds(
    own: Mapping[str, float | None], inherited: Mapping[str, float | None]
) -> dict[str, float | None]:
    """Per SLO name: the environment's threshold (``own``) where it sets one, else the
    service's (``inherited``). For rows read as values, too (the metrics poll)."""
    return {
        name: own.get(name) if own.get(name) is not None else inherited.get(name)
        for name in SLO_NAMES
    }


class ReleaseState(models.TextChoices):
    DRAFT = "draft", "Draft"
    PENDING_APPROVAL = "pending_approval", "Waiting for approval"
    APPROVED = "approved", "Approved"
    DEPLOYING = "deploying", "Deploying"
    LIVE = "live", "Live"
    REJECTED = "rejected", "Rejected"
    CANCELLED = "cancelled", "Cancelled"
    FAILED = "failed", "Failed"
    SUPERSEDED = "superseded", "Superseded"
    ROLLED_BACK = "rolled_back", "Rolled back"


RELEASE_FINAL_STATES = frozenset(
    {
        ReleaseState.REJECTED,
        ReleaseState.CANCELLED,
        ReleaseState.FAILED,
        ReleaseState.SUPERSEDED,
        ReleaseState.ROLLED_BACK,
    }
)
# A release in one of these states is on its way to the cluster; one per target at a time.
RELEASE_IN_FLIGHT_STATES = frozenset({ReleaseState.APPROVED, ReleaseState.DEPLOYING})
# A promotion in any state but a final one is on its way or live: asking again would put
# the same change in front of reviewers twice (or a change that is already there).
PROMOTION_STANDING_STATES = frozenset(ReleaseState) - RELEASE_FINAL_STATES
# The legal transitions; the service functions check against this table.
RELEASE_TRANSITIONS: dict[str, frozenset[str]] = {
    ReleaseState.DRAFT: frozenset(
        {ReleaseState.PENDING_APPROVAL, ReleaseState.APPROVED, ReleaseState.CANCELLED}
    ),
    ReleaseState.PENDING_APPROVAL: frozenset(
        {ReleaseState.APPROVED, ReleaseState.REJECTED, ReleaseState.CANCELLED}
    ),
    ReleaseState.APPROVED: frozenset(
        {ReleaseState.DEPLOYING, ReleaseState.CANCELLED, ReleaseState.FAILED}
    ),
    # superseded: a newer release of the same target was committed before this one went
    # live (release_record_commit). The table lacked it while the code did it; found by
    # the deploy state machine in tests/hardening/test_deploy_machine.py.
    ReleaseState.DEPLOYING: frozenset(
        {ReleaseState.LIVE, ReleaseState.FAILED, ReleaseState.SUPERSEDED}
    ),
    ReleaseState.LIVE: frozenset({ReleaseState.SUPERSEDED, ReleaseState.ROLLED_BACK}),
    **{state: frozenset() for state in RELEASE_FINAL_STATES},
}


class ReleaseKind(models.TextChoices):
    DEPLOY = "deploy", "Deploy"
    PROMOTION = "promotion", "Promotion"
    ROLLBACK = "rollback", "Rollback"


class Release(models.Model):
    """A model version with its serving configuration, for one service in one environment.

    Immutable once submitted: what reviewers approve (``digest``, the digest of the
    rendered manifests in ``rendered_files``) is exactly what gets committed. A change
    means a new release. Only the state columns move after submission.
    """

    uid = models.UUIDField(
        default=uuid.uuid4,
        unique=True,
        editable=False,
        help_text="the Release-Id trailer in the GitOps repository",
    )
    service = models.ForeignKey(Service, on_delete=models.PROTECT, related_name="releases")
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="releases")
    model_version = models.ForeignKey(
        "registry.ModelVersion", on_delete=models.PROTECT, related_name="releases"
    )
    config_overrides = models.JSONField(
        default=dict, blank=True, help_text="this release's own configuration layer, as requested"
    )
    config = models.JSONField(default=dict, help_text="resolved serving configuration snapshot")
    rendered_files = models.JSONField(
        default=dict, help_text="file name -> YAML text, as committed"
    )
    digest = models.CharField(max_length=64, help_text="sha256 of the rendered manifests")
    kind = models.CharField(max_length=16, choices=ReleaseKind.choices, default=ReleaseKind.DEPLOY)
    state = models.CharField(
        max_length=20, choices=ReleaseState.choices, default=ReleaseState.DRAFT, db_index=True
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="requested_releases",
    )
    # Set instead of requested_by when the system itself asked (the auto-rollback guard).
    requested_by_system = models.CharField(max_length=64, blank=True)
    reason = models.TextField(blank=True)
    promoted_from = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="promotions",
        help_text="the release, live in the source environment, that this one promotes",
    )
    rollback_target = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="restored_by",
        help_text="the earlier good release whose manifests this rollback commits again",
    )
    rolled_back_release = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="rolled_back_by",
        help_text="the release that was live when this rollback was requested",
    )
    break_glass = models.BooleanField(
        default=False,
        help_text="approvals skipped by on-call, with the written reason",
    )
    # Break-glass through a freeze (apps.releases.freeze): on-call or an admin let this
    # release past any freeze, with a reason. Approvals are still needed.
    freeze_override_reason = models.TextField(blank=True)
    freeze_override_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    freeze_override_at = models.DateTimeField(null=True, blank=True)
    # NULL, not "": the unique constraint must ignore releases created without a key.
    idempotency_key = models.CharField(max_length=128, null=True, blank=True)  # noqa: DJ001
    # SHA-256 of the canonical request the key was first used with: a replay with the same
    # key and any other request is a 409, not the first result (see the README).
    idempotency_fingerprint = models.CharField(max_length=64, blank=True, default="")
    commit_sha = models.CharField(max_length=40, blank=True)
    status_message = models.TextField(blank=True, help_text="latest word from git or Argo CD")
    # Progressive delivery (docs/progressive-delivery.md). All empty for all-at-once: the
    # release is then committed and judged exactly as before.
    rollout_plan = models.JSONField(
        default=dict, blank=True, help_text="the rollout plan's canonical form; {}: all-at-once"
    )
    rollout_analysis = models.JSONField(
        default=dict, blank=True, help_text="the service's analysis config (thresholds, promql)"
    )
    rollout_files = models.JSONField(
        default=list,
        blank=True,
        help_text="the files of each observed step, in order (the promotion is rendered_files)",
    )
    rollout_stable = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="rollout_candidates",
        help_text="the live release the steps share traffic with (and an abort restores)",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    deploy_started_at = models.DateTimeField(null=True, blank=True)
    live_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["service", "environment", "state"]),
            models.Index(fields=["state", "created_at"]),
        ]
        constraints = [
            # The database itself guarantees at most one live release per target.
            models.UniqueConstraint(
                fields=["service", "environment"],
                condition=Q(state="live"),
                name="one_live_release_per_target",
            ),
            # One rollback under way per target: a double click or two people at once
            # cannot start two.
            models.UniqueConstraint(
                fields=["service", "environment"],
                condition=Q(
                    kind="rollback", state__in=["pending_approval", "approved", "deploying"]
                ),
                name="one_rollback_in_flight_per_target",
            ),
            models.UniqueConstraint(
                fields=["requested_by", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="release_idempotency_key_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.service.name} {self.model_version} -> {self.environment.name}"

    @property
    def is_final(self) -> bool:
        return self.state in RELEASE_FINAL_STATES

    @property
    def is_progressive(self) -> bool:
        return bool(self.rollout_plan) and self.rollout_plan.get("strategy") != "all-at-once"

    @property
    def restores_in_place(self) -> bool:
        """A drift restore (apps/releases/services/drift.py): the live release's own
        approved files committed again over an unapproved change. A rollback in form
        (kind, target) that takes nothing back: ``rolled_back_release`` stays empty,
        where every other rollback names the release it takes back."""
        return (
            self.kind == ReleaseKind.ROLLBACK
            and self.rolled_back_release_id is None
            and self.rollback_target_id is not None
        )

    @property
    def requester_label(self) -> str:
        if self.requested_by_id is not None:
            return self.requested_by.get_username()
        return f"system:{self.requested_by_system}"


class ApprovalDecision(models.TextChoices):
    APPROVE = "approve", "Approved"
    REJECT = "reject", "Rejected"


class Approval(models.Model):
    """One reviewer's decision on one release, bound to the digest they saw."""

    release = models.ForeignKey(Release, on_delete=models.PROTECT, related_name="approvals")
    approver = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="approvals"
    )
    role = models.CharField(max_length=32, choices=REVIEWER_ROLE_CHOICES)
    decision = models.CharField(max_length=16, choices=ApprovalDecision.choices)
    comment = models.TextField(blank=True)
    digest = models.CharField(max_length=64, help_text="the release digest this decision is about")
    evidence = models.JSONField(
        default=dict,
        blank=True,
        help_text="what the reviewer saw when deciding: summary, metric comparison, soak figures",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            # One person, one decision per release: fills at most one slot.
            models.UniqueConstraint(fields=["release", "approver"], name="one_decision_per_person"),
        ]

    def __str__(self) -> str:
        return f"{self.approver} {self.decision} #{self.release_id} as {self.role}"


def validate_time_zone(value: str) -> None:
    """An IANA time zone name the standard library knows (``Europe/London``)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from django.core.exceptions import ValidationError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            f"{value!r} is not an IANA time zone; use a name such as Europe/London or UTC."
        ) from None


class FreezeWindow(models.Model):
    """A calendar window during which releases into an environment (or every environment)
    wait: a one-off window (start and end) or a recurring one (an RFC 5545 RRULE and a
    duration). Times are wall-clock times in ``time_zone``, so "Saturday 00:00 in London"
    stays Saturday 00:00 across daylight-saving changes. Rollbacks are never frozen.
    The arithmetic is in ``apps.releases.freeze``.
    """

    environment = models.ForeignKey(
        Environment,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="freeze_windows",
        help_text="empty: the window freezes every environment (organisation-wide)",
    )
    reason = models.CharField(max_length=300, help_text="shown to everyone the window holds")
    time_zone = models.CharField(
        max_length=64,
        default="UTC",
        validators=[validate_time_zone],
        help_text="IANA time zone the start and end are wall-clock times in",
    )
    start_date = models.DateField()
    start_time = models.TimeField(help_text="local time in the window's time zone")
    end_date = models.DateField(null=True, blank=True, help_text="one-off windows: last day")
    end_time = models.TimeField(null=True, blank=True, help_text="one-off windows: local time")
    recurrence = models.CharField(
        max_length=500,
        blank=True,
        help_text="recurring windows: an RFC 5545 RRULE, e.g. FREQ=WEEKLY;BYDAY=SA; each "
        "occurrence starts at the start time",
    )
    duration = models.DurationField(
        null=True,
        blank=True,
        help_text="recurring windows: how long each occurrence lasts; whole days count in "
        "wall-clock days, the rest in elapsed time (RFC 5545)",
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["environment__order", "start_date", "pk"]
        constraints = [
            models.CheckConstraint(
                name="freeze_window_one_off_or_recurring",
                condition=(
                    Q(
                        recurrence="",
                        duration__isnull=True,
                        end_date__isnull=False,
                        end_time__isnull=False,
                    )
                    | (~Q(recurrence="") & Q(duration__isnull=False, end_date__isnull=True))
                ),
            ),
        ]

    def __str__(self) -> str:
        where = self.environment.name if self.environment_id else "every environment"
        return f"{self.reason} ({where})"

    @property
    def is_recurring(self) -> bool:
        return bool(self.recurrence)

    def clean(self) -> None:
        """Refuse in the admin what the freeze arithmetic cannot use, saying why."""
        from django.core.exceptions import ValidationError

        from apps.releases.freeze_rules import FreezeRuleError, window_check

        try:
            window_check(self)
        except FreezeRuleError as exc:
            raise ValidationError(exc.errors) from None


class RolloutState(models.TextChoices):
    RUNNING = "running", "Running"
    PAUSED = "paused", "Paused"
    PROMOTED = "promoted", "Promoted"
    ABORTED = "aborted", "Aborted"
    # Aborted, and the candidate may not be released here again until a person lifts the
    # hold with a reason (automation never re-promotes it).
    HELD = "held", "Aborted and held"


ROLLOUT_FINAL_STATES = frozenset({RolloutState.PROMOTED, RolloutState.ABORTED, RolloutState.HELD})
ABORT = "abort"


class Rollout(models.Model):
    """Where a progressive release's rollout stands; one per release, made when the
    deployer claims it.

    ``pending`` is the commit decided but not yet recorded ("step-2", "abort"): it is
    written before the commit is made and cleared with the commit's id, so a worker killed
    between the push and the database write makes the same commit again, which the git
    writer finds by its Step-Key trailer instead of pushing twice.
    """

    release = models.OneToOneField(Release, on_delete=models.CASCADE, related_name="rollout")
    state = models.CharField(
        max_length=16, choices=RolloutState.choices, default=RolloutState.RUNNING
    )
    step = models.PositiveSmallIntegerField(default=0, help_text="the last step committed")
    step_started_at = models.DateTimeField(null=True, blank=True)
    # When a person last resumed it: an inconclusive step is given its extension again.
    resumed_at = models.DateTimeField(null=True, blank=True)
    pending = models.CharField(max_length=16, blank=True)
    # Why the pending commit was decided, for its Analysis-Verdict trailer.
    pending_verdict = models.CharField(max_length=64, blank=True)
    message = models.TextField(blank=True)
    abort_commit_sha = models.CharField(max_length=40, blank=True)
    abort_reason = models.TextField(blank=True)
    hold_lifted_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"rollout of #{self.release_id}: {self.state} at step {self.step}"

    @property
    def is_final(self) -> bool:
        return self.state in ROLLOUT_FINAL_STATES and not self.pending


class RolloutStep(models.Model):
    """One step of a rollout: its commit and the latest analysis verdict with its numbers."""

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="steps")
    number = models.PositiveSmallIntegerField()
    weight = models.PositiveSmallIntegerField()
    mirror_percent = models.PositiveSmallIntegerField(default=0)
    commit_sha = models.CharField(max_length=40, blank=True)
    committed_at = models.DateTimeField(null=True, blank=True)
    verdict = models.CharField(max_length=16, blank=True)  # pass / fail / inconclusive
    verdict_message = models.TextField(blank=True)
    analysis = models.JSONField(default=dict, blank=True)
    judged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["rollout", "number"]
        constraints = [
            models.UniqueConstraint(fields=["rollout", "number"], name="rollout_step_unique"),
        ]

    def __str__(self) -> str:
        return f"step {self.number} ({self.weight}%) of #{self.rollout.release_id}"


class ShadowState(models.TextChoices):
    STARTING = "starting", "Starting"  # the start commit is decided, not recorded yet
    RUNNING = "running", "Running"
    ENDING = "ending", "Ending"  # the end commit is decided, not recorded yet
    DONE = "done", "Done"  # the live release's own files are back
    ENDED = "ended", "Ended by another change"  # a deploy replaced the folder: no end commit


SHADOW_ACTIVE_STATES = (ShadowState.STARTING, ShadowState.RUNNING, ShadowState.ENDING)
SHADOW_START = "start"
SHADOW_END = "end"


class ShadowEvaluation(models.Model):
    """A shadow run of a release that waits for approval, in its target environment:
    the live release's files plus the candidate receiving a mirrored share of requests
    (its answers are recorded, never returned), judged by the analysis after its window,
    then the live release's own files again. The report is approval evidence.

    ``pending`` ("start", "end") is the commit decided and not yet recorded: written
    under the row lock before the commit is made, cleared with the commit's id (the
    rollout's crash-safety pattern; the git writer finds a pushed commit again by its
    Step-Key trailer).
    """

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    release = models.ForeignKey(
        Release, on_delete=models.CASCADE, related_name="shadow_evaluations"
    )
    # Copied from the release, for the one-evaluation-per-target constraint.
    service = models.ForeignKey(Service, on_delete=models.PROTECT, related_name="+")
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="+")
    live = models.ForeignKey(
        Release,
        on_delete=models.PROTECT,
        related_name="shadowed_by",
        help_text="the live release whose traffic is mirrored (and whose files come back)",
    )
    run = models.PositiveSmallIntegerField(default=1, help_text="1 for the release's first run")
    state = models.CharField(
        max_length=16, choices=ShadowState.choices, default=ShadowState.STARTING
    )
    pending = models.CharField(max_length=16, blank=True)
    mirror_percent = models.PositiveSmallIntegerField()
    observe_minutes = models.PositiveIntegerField(null=True, blank=True)
    observe_requests = models.PositiveIntegerField(null=True, blank=True)
    files = models.JSONField(default=dict, help_text="the evaluation's manifests (no metadata)")
    analysis_config = models.JSONField(
        default=dict, blank=True, help_text="the service's analysis config (thresholds, promql)"
    )
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    started_by_system = models.CharField(max_length=64, blank=True)
    reason = models.TextField(blank=True)
    stopped_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    stop_reason = models.TextField(blank=True)
    start_commit_sha = models.CharField(max_length=40, blank=True)
    started_at = models.DateTimeField(null=True, blank=True, help_text="start commit recorded")
    end_commit_sha = models.CharField(max_length=40, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    verdict = models.CharField(max_length=16, blank=True)  # pass / fail / inconclusive
    verdict_message = models.TextField(blank=True)
    analysis = models.JSONField(default=dict, blank=True)
    judged_at = models.DateTimeField(null=True, blank=True, help_text="the report is final")
    requests = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="mirrored requests the shadow answered so far"
    )
    message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # One evaluation per target at a time: two starts at once make one commit.
            models.UniqueConstraint(
                fields=["service", "environment"],
                condition=Q(state__in=["starting", "running", "ending"]),
                name="one_shadow_evaluation_per_target",
            ),
            models.UniqueConstraint(fields=["release", "run"], name="shadow_evaluation_run"),
        ]

    def __str__(self) -> str:
        return f"shadow evaluation {self.run} of #{self.release_id}: {self.state}"

    @property
    def is_active(self) -> bool:
        return self.state in SHADOW_ACTIVE_STATES

    @property
    def step_name(self) -> str:
        """The Step-Key suffix of its start commit (the end adds ``-end``)."""
        return "shadow-evaluation" + (f"-{self.run}" if self.run > 1 else "")

    @property
    def end_step_name(self) -> str:
        return "shadow-evaluation-end" + (f"-{self.run}" if self.run > 1 else "")

    @property
    def started_by_label(self) -> str:
        if self.started_by_id is not None:
            return self.started_by.get_username()
        return f"system:{self.started_by_system}"
