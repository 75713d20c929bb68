"""Django admin for setup: services, environments and their approval policies.

Releases and approvals are read-only here: they change only through the release
actions, which lock, check and audit. Setup changes made here are audited too.
"""

from django import forms
from django.contrib import admin
from django.db import models

from apps.audit.services import audit_record_standalone, audited_atomic
from apps.core.admin import ReadOnlyAdmin
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
    Release,
    Rollout,
    Service,
    ServiceEnvironment,
)


class AuditedAdmin(admin.ModelAdmin):
    # Pasted JSON is checked for depth and for text PostgreSQL cannot store, the way the
    # API checks a request body, so a bad paste is a form error and not a 500.
    formfield_overrides = {models.JSONField: {"form_class": SafeJSONFormField}}

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "name" and isinstance(db_field, models.CharField):
            # Names are used as typed: " svc" or "svc\n" is refused by the name validator
            # with a message instead of being trimmed to a different name than was typed.
            kwargs["strip"] = False
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    # Django's admin wraps a save or delete in transaction.atomic and then calls
    # save_model, which audits: the transaction must open with the audit chain lock
    # (apps.audit.services, lock order), so these views open it with audited_atomic and
    # Django's atomic nests inside as a savepoint.
    def changeform_view(self, request, *args, **kwargs):
        with audited_atomic():
            return super().changeform_view(request, *args, **kwargs)

    def delete_view(self, request, *args, **kwargs):
        with audited_atomic():
            return super().delete_view(request, *args, **kwargs)

    def changelist_view(self, request, *args, **kwargs):
        if request.method != "POST":  # a page view writes nothing: no lock
            return super().changelist_view(request, *args, **kwargs)
        with audited_atomic():
            return super().changelist_view(request, *args, **kwargs)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        audit_record_standalone(
            actor=request.user,
            action=f"{obj._meta.model_name}.{'change' if change else 'create'}",
            target_type=obj._meta.model_name,
            target_id=obj.pk,
            after={"changed": sorted(form.changed_data)},
        )

    def delete_model(self, request, obj):
        pk = obj.pk
        super().delete_model(request, obj)
        audit_record_standalone(
            actor=request.user,
            action=f"{obj._meta.model_name}.delete",
            target_type=obj._meta.model_name,
            target_id=pk,
        )


class ServiceAdminForm(forms.ModelForm):
    """Refuses a runtime and default configuration releases would fail on."""

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
                config_overrides=cleaned["config_overrides"], environment_id=self.instance.pk
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
    search_fields = ("name", "owner_team", "registered_model")
    list_filter = ("runtime",)


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
