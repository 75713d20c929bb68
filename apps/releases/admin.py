"""Django admin for setup: services, environments and their approval policies.

Releases and approvals are read-only here: they change only through the release
actions, which lock, check and audit. Setup changes made here are audited too.
"""

from django import forms
from django.contrib import admin
from django.db import models

from apps.accounts.models import Team
from apps.audit.admin import AuditedAdmin as BaseAuditedAdmin
from apps.audit.services import audit_record_standalone
from apps.core.admin import ReadOnlyAdmin, kept_boolean_formfield
from apps.core.jsoninput import SafeJSONFormField
from apps.releases.config_check import (
    environment_config_problems,
    service_config_problems,
    target_config_problem,
)
from apps.releases.models import (
    Approval,
    ApprovalRule,
    Environment,
    FreezeWindow,
    Release,
    Rollout,
    Service,
    ServiceEnvironment,
    ShadowEvaluation,
)


class AuditedAdmin(BaseAuditedAdmin):
    # Pasted JSON is checked for depth and for text PostgreSQL cannot store, the way the
    # API checks a request body, so a bad paste is a form error and not a 500.
    formfield_overrides = {models.JSONField: {"form_class": SafeJSONFormField}}

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if isinstance(db_field, models.BooleanField) and not db_field.null:
            # A setting the posted form did not carry keeps its value instead of reading
            # as an unticked box (freeze_on_alerts was switched off that way).
            return kept_boolean_formfield(db_field)
        if db_field.name == "name" and isinstance(db_field, models.CharField):
            # Names are used as typed: " svc" or "svc\n" is refused by the name validator
            # with a message instead of being trimmed to a different name than was typed.
            kwargs["strip"] = False
        return super().formfield_for_dbfield(db_field, request, **kwargs)


class ServiceAdminForm(forms.ModelForm):
    """Refuses a runtime and default configuration releases would fail on. The owning
    team is chosen by its slug, as the API names it."""

    owner_team = forms.ModelChoiceField(
        queryset=Team.objects.order_by("slug"),
        to_field_name="slug",
        error_messages={
            "invalid_choice": "No team %(value)s: create it under Accounts > Teams first."
        },
    )

    class Meta:
        model = Service
        fields = "__all__"  # noqa: DJ007 - the admin shows every field

    def clean(self):
        cleaned = super().clean()
        if "runtime" in cleaned and "default_config" in cleaned:
            for problem in service_config_problems(
                runtime=cleaned["runtime"],
                default_config=cleaned["default_config"],
                service_id=self.instance.pk,
            ):
                self.add_error("default_config", problem)
        return cleaned


class EnvironmentAdminForm(forms.ModelForm):
    """Refuses overrides that the releases of some service here would fail on."""

    class Meta:
        model = Environment
        fields = "__all__"  # noqa: DJ007 - the admin shows every field

    def clean(self):
        cleaned = super().clean()
        if "config_overrides" in cleaned:
            for problem in environment_config_problems(
                config_overrides=cleaned["config_overrides"],
                environment_id=self.instance.pk,
                environment_name=cleaned.get("name") or "",
            ):
                self.add_error("config_overrides", problem)
        return cleaned


class ServiceEnvironmentAdminForm(forms.ModelForm):
    """Refuses per-target overrides that this service's releases there would fail on."""

    class Meta:
        model = ServiceEnvironment
        fields = "__all__"  # noqa: DJ007 - the admin shows every field

    def clean(self):
        cleaned = super().clean()
        service, environment = cleaned.get("service"), cleaned.get("environment")
        if service and environment and "config_overrides" in cleaned:
            problem = target_config_problem(
                service=service,
                environment=environment,
                config_overrides=cleaned["config_overrides"],
            )
            if problem:
                self.add_error("config_overrides", problem)
        return cleaned


class ApprovalRuleInline(admin.TabularInline):
    model = ApprovalRule
    extra = 0


@admin.register(Environment)
class EnvironmentAdmin(AuditedAdmin):
    form = EnvironmentAdminForm
    list_display = (
        "name",
        "order",
        "promotes_from",
        "min_soak_minutes",
        "is_production",
        "auto_rollback",
        "shadow_evaluation",
    )
    inlines = [ApprovalRuleInline]

    def save_formset(self, request, form, formset, change):
        super().save_formset(request, form, formset, change)
        if formset.has_changed():
            rules = [f"{r.min_count}x{r.role}" for r in form.instance.approval_rules.all()]
            audit_record_standalone(
                actor=request.user,
                action="environment.policy",
                target_type="environment",
                target_id=form.instance.pk,
                after={"rules": rules},
            )


@admin.register(Service)
class ServiceAdmin(AuditedAdmin):
    form = ServiceAdminForm
    list_display = ("name", "owner_team", "registered_model", "runtime")
    search_fields = ("name", "owner_team__slug", "registered_model")
    list_filter = ("runtime", "owner_team")
    list_select_related = ("owner_team",)


@admin.register(ServiceEnvironment)
class ServiceEnvironmentAdmin(AuditedAdmin):
    form = ServiceEnvironmentAdminForm
    list_display = ("service", "environment", "sync_status", "health_status", "status_observed_at")
    readonly_fields = (
        "sync_status",
        "health_status",
        "synced_revision",
        "status_message",
        "status_observed_at",
    )


@admin.register(FreezeWindow)
class FreezeWindowAdmin(AuditedAdmin):
    """Calendar freezes. ``FreezeWindow.clean`` refuses a window the freeze arithmetic
    cannot use (unknown zone, bad RRULE, end before start) with a message per field."""

    list_display = ("reason", "environment", "schedule", "time_zone", "enabled")
    list_filter = ("enabled", "environment")
    search_fields = ("reason",)
    fieldsets = (
        (None, {"fields": ("reason", "environment", "enabled", "time_zone")}),
        ("Start (wall-clock time in the time zone)", {"fields": ("start_date", "start_time")}),
        ("One-off window: end", {"fields": ("end_date", "end_time")}),
        (
            "Recurring window",
            {
                "fields": ("recurrence", "duration"),
                "description": "An RFC 5545 RRULE such as FREQ=WEEKLY;BYDAY=SA, and how long "
                "each occurrence lasts, e.g. '2 06:00:00' for two days and six hours.",
            },
        ),
    )

    @admin.display(description="schedule")
    def schedule(self, window: FreezeWindow) -> str:
        start = f"{window.start_date} {window.start_time:%H:%M}"
        if window.recurrence:
            return f"{window.recurrence} from {start}, for {window.duration}"
        return f"{start} to {window.end_date} {window.end_time:%H:%M}"


@admin.register(Release)
class ReleaseAdmin(ReadOnlyAdmin):
    list_display = ("pk", "service", "environment", "model_version", "kind", "state", "created_at")
    list_filter = ("state", "kind", "environment")
    list_select_related = ("service", "environment", "model_version")


@admin.register(Approval)
class ApprovalAdmin(ReadOnlyAdmin):
    list_display = ("release", "approver", "role", "decision", "created_at")
    list_select_related = (
        "release__service",
        "release__environment",
        "release__model_version",
        "approver",
    )


@admin.register(Rollout)
class RolloutAdmin(ReadOnlyAdmin):
    # Read-only: every move goes through the services (and their audit rows).
    list_display = ("release", "state", "step", "pending", "updated_at")
    list_filter = ("state",)
    list_select_related = ("release__service", "release__environment", "release__model_version")


@admin.register(ShadowEvaluation)
class ShadowEvaluationAdmin(ReadOnlyAdmin):
    # Read-only: starting, stopping and judging go through the services (and the audit).
    list_display = ("release", "run", "state", "verdict", "pending", "updated_at")
    list_filter = ("state", "verdict")
    list_select_related = ("release__service", "release__environment", "release__model_version")
