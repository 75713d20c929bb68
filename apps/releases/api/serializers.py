"""API shapes. Input serializers are small and per action; output serializers are flat."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.accounts.models import Team
from apps.releases.freeze import freeze_status, is_exempt
from apps.releases.models import (
    REVIEWER_ROLE_CHOICES,
    Approval,
    Environment,
    Release,
    ReleaseState,
    Service,
)
from apps.releases.policy import PolicyProgress
from apps.releases.selectors import release_policy_progress
from apps.releases.validators import validate_dns1123_label

_TEXT = {
    "max_length": settings.RELEASE_TEXT_MAX_LENGTH,
    "allow_blank": True,
    "required": False,
    "default": "",
}


class EnvironmentSerializer(serializers.ModelSerializer):
    # allow_null: staging promotes from nothing; the schema said "string" and the API
    # answered null (found by schemathesis, tests/hardening/test_api_fuzz.py).
    promotes_from = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)
    approval_rules = serializers.SerializerMethodField()
    # Whether the model's trainer is refused as an approver here (separation of duties).
    separates_trainer = serializers.BooleanField(read_only=True)

    class Meta:
        model = Environment
        fields = [
            "name",
            "order",
            "promotes_from",
            "min_soak_minutes",
            "is_production",
            "auto_rollback",
            "bake_minutes",
            "kserve_mode",
            "kserve_version",
            "shadow_evaluation",
            "approval_rules",
            "separates_trainer",
        ]

    def get_approval_rules(self, env) -> list[dict]:
        return [{"role": r.role, "min_count": r.min_count} for r in env.approval_rules.all()]


class ServiceSerializer(serializers.ModelSerializer):
    # The team by its slug, in and out (it was free text before teams existed).
    owner_team = serializers.SlugRelatedField(slug_field="slug", queryset=Team.objects.all())

    class Meta:
        model = Service
        fields = [
            "name",
            "description",
            "owner_team",
            "registered_model",
            "runtime",
            "default_config",
            "runbook_url",
            "slo_p95_latency_ms",
            "slo_error_rate",
            "slo_cost_per_day",
            "slo_drift_psi",
        ]


class ApprovalSerializer(serializers.ModelSerializer):
    approver = serializers.CharField(source="approver.get_username")

    class Meta:
        model = Approval
        fields = ["approver", "role", "decision", "comment", "digest", "created_at"]


class RoleProgressSerializer(serializers.Serializer):
    role = serializers.CharField()
    required = serializers.IntegerField()
    approved_by = serializers.ListField(child=serializers.CharField())
    met = serializers.BooleanField()


class PolicyProgressSerializer(serializers.Serializer):
    met = serializers.BooleanField()
    rejected = serializers.BooleanField()
    summary = serializers.CharField()
    roles = RoleProgressSerializer(many=True)


class FreezeReasonSerializer(serializers.Serializer):
    # Plain text, not a choice: an enum named "kind" would collide in the schema with
    # the release's kind.
    kind = serializers.CharField(help_text="calendar (a freeze window) or signal (an alert)")
    reason = serializers.CharField()
    scope = serializers.CharField(help_text="the environment, or 'every environment'")
    starts_at = serializers.DateTimeField(allow_null=True)
    ends_at = serializers.DateTimeField(allow_null=True, help_text="null: until it clears")


class FreezeSerializer(serializers.Serializer):
    environment = serializers.CharField()
    frozen = serializers.BooleanField()
    until = serializers.DateTimeField(
        allow_null=True, help_text="end of the overlapping calendar windows"
    )
    until_alert_clears = serializers.BooleanField(
        help_text="an SLO breach or drift alert holds it: no end time"
    )
    message = serializers.CharField()
    reasons = FreezeReasonSerializer(many=True)


class FreezeOverrideSerializer(serializers.Serializer):
    reason = serializers.CharField()
    by = serializers.CharField(allow_null=True)
    at = serializers.DateTimeField()


_OPEN_STATES = {ReleaseState.DRAFT, ReleaseState.PENDING_APPROVAL, ReleaseState.APPROVED}


def _freeze(env) -> dict:
    return freeze_status(env).as_dict()


class RolloutStepSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    weight = serializers.IntegerField()
    mirror_percent = serializers.IntegerField()
    commit_sha = serializers.CharField()
    committed_at = serializers.DateTimeField(allow_null=True)
    verdict = serializers.CharField(help_text="pass, fail, inconclusive, or empty: not judged")
    verdict_message = serializers.CharField()
    analysis = serializers.DictField(help_text="the checks with their numbers and thresholds")
    judged_at = serializers.DateTimeField(allow_null=True)


class RolloutSerializer(serializers.Serializer):
    state = serializers.CharField()
    step = serializers.IntegerField(help_text="the last step committed (0: none yet)")
    pending = serializers.CharField(help_text="the commit decided and not yet recorded")
    message = serializers.CharField()
    abort_commit_sha = serializers.CharField()
    abort_reason = serializers.CharField()
    hold_lifted_reason = serializers.CharField()
    step_started_at = serializers.DateTimeField(allow_null=True)
    ended_at = serializers.DateTimeField(allow_null=True)
    steps = RolloutStepSerializer(many=True, source="steps.all")


class ShadowRowSerializer(serializers.Serializer):
    label = serializers.CharField()
    unit = serializers.CharField()
    shadow = serializers.CharField()
    production = serializers.CharField()
    verdict = serializers.CharField(allow_null=True)
    message = serializers.CharField(allow_null=True)


class ShadowReportSerializer(serializers.Serializer):
    run = serializers.IntegerField()
    state = serializers.CharField(help_text="starting, running, ending, done, ended")
    judged = serializers.BooleanField()
    verdict = serializers.CharField(help_text="pass, fail, inconclusive; '' until judged")
    interim_verdict = serializers.CharField(help_text="while running: the verdict so far")
    message = serializers.CharField()
    status = serializers.CharField()
    mirror_percent = serializers.IntegerField()
    observe = serializers.DictField()
    minutes_left = serializers.IntegerField(allow_null=True)
    live_release_id = serializers.IntegerField()
    requests = serializers.DictField(help_text="candidate (the shadow) and stable (production)")
    compared = serializers.FloatField(allow_null=True)
    rows = ShadowRowSerializer(many=True)
    start = serializers.CharField(allow_null=True)
    end = serializers.CharField(allow_null=True)
    started_by = serializers.CharField()
    reason = serializers.CharField()
    stopped_by = serializers.CharField(allow_null=True)
    stop_reason = serializers.CharField()
    started_at = serializers.CharField(allow_null=True)
    judged_at = serializers.CharField(allow_null=True)
    ended_at = serializers.CharField(allow_null=True)
    start_commit = serializers.CharField(allow_null=True)
    end_commit = serializers.CharField(allow_null=True)


class ShadowEvaluationSerializer(serializers.Serializer):
    policy = serializers.CharField(help_text="the environment's: off, optional, required")
    unavailable = serializers.CharField(
        allow_null=True, help_text="why no evaluation can run for this release, if so"
    )
    approval_blocked = serializers.CharField(
        allow_null=True, help_text="why an approval is refused now (409), if it is"
    )
    current = ShadowReportSerializer(
        allow_null=True, help_text="the latest judged run: the report reviewers weigh"
    )
    runs = ShadowReportSerializer(many=True, help_text="every run, newest first")


class ReleaseSerializer(serializers.ModelSerializer):
    service = serializers.CharField(source="service.name")
    environment = serializers.CharField(source="environment.name")
    model_name = serializers.CharField(source="model_version.name")
    model_version = serializers.IntegerField(source="model_version.version")
    requested_by = serializers.CharField(source="requester_label")
    release_id = serializers.UUIDField(source="uid")
    approvals = ApprovalSerializer(many=True)
    policy = serializers.SerializerMethodField()
    freeze = serializers.SerializerMethodField(
        help_text="the release's environment, while the release has not started deploying "
        "(null otherwise, and for rollbacks, which are never frozen): frozen requests are "
        "refused, approved releases held until it ends"
    )
    promotion_freezes = serializers.SerializerMethodField(
        help_text="a live release: each environment it promotes to and its freeze"
    )
    freeze_override = serializers.SerializerMethodField(
        help_text="break glass: who let this release through any freeze, and why"
    )
    rollout_plan = serializers.SerializerMethodField()
    rollout = serializers.SerializerMethodField()
    shadow_evaluation = serializers.SerializerMethodField()

    class Meta:
        model = Release
        fields = [
            "id",
            "release_id",
            "service",
            "environment",
            "model_name",
            "model_version",
            "kind",
            "state",
            "requested_by",
            "reason",
            "config",
            "digest",
            "commit_sha",
            "status_message",
            "break_glass",
            "promoted_from",
            "rollback_target",
            "rolled_back_release",
            "created_at",
            "submitted_at",
            "approved_at",
            "deploy_started_at",
            "live_at",
            "ended_at",
            "approvals",
            "policy",
            "freeze",
            "promotion_freezes",
            "freeze_override",
            "rollout_plan",
            "rollout",
            "shadow_evaluation",
        ]

    @extend_schema_field(FreezeSerializer(allow_null=True))
    def get_freeze(self, release) -> dict | None:
        if release.state not in _OPEN_STATES or is_exempt(release):
            return None
        return _freeze(release.environment)

    @extend_schema_field(FreezeSerializer(many=True))
    def get_promotion_freezes(self, release) -> list[dict]:
        if release.state != ReleaseState.LIVE:
            return []
        return [
            _freeze(env)
            for env in Environment.objects.filter(promotes_from_id=release.environment_id)
        ]

    @extend_schema_field(FreezeOverrideSerializer(allow_null=True))
    def get_freeze_override(self, release) -> dict | None:
        if not release.freeze_override_reason:
            return None
        by = release.freeze_override_by
        return {
            "reason": release.freeze_override_reason,
            "by": by.get_username() if by else None,
            "at": release.freeze_override_at,
        }

    def get_rollout_plan(self, release) -> dict:
        return release.rollout_plan or {"strategy": "all-at-once"}

    def get_rollout(self, release) -> RolloutSerializer(allow_null=True):
        rollout = getattr(release, "rollout", None) if release.is_progressive else None
        return RolloutSerializer(rollout).data if rollout is not None else None

    @extend_schema_field(ShadowEvaluationSerializer(allow_null=True))
    def get_shadow_evaluation(self, release) -> dict | None:
        """Null where the environment's policy is off and no evaluation ran."""
        from apps.releases.services.shadow_policy import (
            shadow_approval_refusal,
            shadow_policy,
            shadow_unavailable,
        )
        from apps.releases.shadow_report import release_shadow_reports

        runs = release_shadow_reports(release)
        policy = shadow_policy(release)
        if not runs and policy == "off":
            return None
        waiting = release.state == ReleaseState.PENDING_APPROVAL
        return {
            "policy": policy,
            "unavailable": shadow_unavailable(release) if waiting else None,
            "approval_blocked": shadow_approval_refusal(release) if waiting else None,
            "current": next((r for r in runs if r["judged"]), None),
            "runs": runs,
        }

    def get_policy(self, release) -> PolicyProgressSerializer:
        progress: PolicyProgress = release_policy_progress(release)
        return PolicyProgressSerializer(
            {
                "met": progress.met,
                "rejected": progress.rejected,
                "summary": progress.summary,
                "roles": [
                    {
                        "role": r.role,
                        "required": r.required,
                        "approved_by": list(r.approved_by),
                        "met": r.met,
                    }
                    for r in progress.roles
                ],
            }
        ).data


class ReleaseListSerializer(ReleaseSerializer):
    class Meta(ReleaseSerializer.Meta):
        fields = [
            "id",
            "release_id",
            "service",
            "environment",
            "model_name",
            "model_version",
            "kind",
            "state",
            "requested_by",
            "digest",
            "commit_sha",
            "created_at",
            "live_at",
        ]


NAME_FILTER = r"^[a-z0-9-]{0,63}$"
_STATES = [c[0] for c in Release._meta.get_field("state").choices]
_KINDS = [c[0] for c in Release._meta.get_field("kind").choices]


class ReleaseFilterSerializer(serializers.Serializer):
    """Query parameters of the release list. A filter that cannot match (an unknown state,
    a name that is not a DNS-1123 label) is a 400, not a silently empty list."""

    service = serializers.RegexField(NAME_FILTER, required=False, allow_blank=True, default="")
    environment = serializers.RegexField(NAME_FILTER, required=False, allow_blank=True, default="")
    state = serializers.ChoiceField(_STATES, required=False, allow_blank=True, default="")
    kind = serializers.ChoiceField(_KINDS, required=False, allow_blank=True, default="")
    team = serializers.RegexField(NAME_FILTER, required=False, allow_blank=True, default="")


def _name_field(**kwargs) -> serializers.CharField:
    """A service or environment name as typed: DRF trims whitespace by default, which
    made " churn-model" mean churn-model; the name validator refuses it instead."""
    return serializers.CharField(
        max_length=63, trim_whitespace=False, validators=[validate_dns1123_label], **kwargs
    )


class ReleaseCreateSerializer(serializers.Serializer):
    service = _name_field()
    environment = _name_field()
    model_version = serializers.IntegerField(
        min_value=1,
        max_value=2**31 - 1,
        help_text="version number in the service's registered model",
    )
    config_overrides = serializers.DictField(required=False, default=dict)
    reason = serializers.CharField(**_TEXT)
    rollout = serializers.DictField(
        required=False,
        allow_null=True,
        default=None,
        help_text="the rollout plan, e.g. {strategy: canary, steps: [{weight: 10}]}; "
        "default: the service's configuration (rollout:), else all-at-once",
    )


class ApproveSerializer(serializers.Serializer):
    role = serializers.ChoiceField(
        choices=REVIEWER_ROLE_CHOICES,
        required=False,
        allow_null=True,
        default=None,
    )
    comment = serializers.CharField(**_TEXT)
    digest = serializers.RegexField(
        r"^[0-9a-f]{64}$",
        required=False,
        allow_null=True,
        default=None,
        help_text="the digest you reviewed; refused if the release differs",
    )


class RejectSerializer(serializers.Serializer):
    role = serializers.ChoiceField(
        choices=REVIEWER_ROLE_CHOICES,
        required=False,
        allow_null=True,
        default=None,
    )
    comment = serializers.CharField(max_length=settings.RELEASE_TEXT_MAX_LENGTH)


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(**_TEXT)


class RolloutActionSerializer(serializers.Serializer):
    reason = serializers.CharField(**_TEXT)


class PromoteSerializer(serializers.Serializer):
    environment = _name_field(required=False, allow_null=True, default=None)
    reason = serializers.CharField(**_TEXT)
    break_glass = serializers.CharField(
        **_TEXT,
        help_text="on-call or admin: why this promotion must go through a freeze of the "
        "target environment (audited; approvals are still needed)",
    )


class FreezeOverrideRequestSerializer(serializers.Serializer):
    reason = serializers.CharField(
        max_length=settings.RELEASE_TEXT_MAX_LENGTH,
        help_text="why this release must go through the freeze (audited)",
    )


class RollbackSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=settings.RELEASE_TEXT_MAX_LENGTH)
    target = serializers.IntegerField(
        required=False,
        allow_null=True,
        default=None,
        min_value=1,
        max_value=2**63 - 1,
        help_text="release id to restore; default: the last good one",
    )


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    errors = serializers.DictField(required=False)
    freeze = FreezeSerializer(
        required=False, help_text="a 409 refused because the environment is frozen"
    )
