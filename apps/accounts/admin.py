"""Admin for people, roles, teams, grants and tokens. Every change made here is written
to the audit chain like any other change (apps.audit.admin.AuditedAdmin)."""

from axes.admin import AccessAttemptAdmin
from axes.models import AccessAttempt
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group

from apps.accounts.models import ApiToken, RoleGrant, Team
from apps.accounts.roles import ALL_ROLES
from apps.accounts.signin import signin_lockout_clear
from apps.audit.admin import AuditedAdmin
from apps.audit.services import audit_record_standalone, audited_atomic


class TeamGrantInline(admin.TabularInline):
    """On a team's page: who holds which role for it."""

    model = RoleGrant
    extra = 0
    autocomplete_fields = ("user",)


class UserGrantInline(admin.TabularInline):
    """On a person's page: the roles they hold per team (empty team: every team)."""

    model = RoleGrant
    extra = 0
    autocomplete_fields = ("team",)


def _grants_text(fk_name: str, instance) -> list[str]:
    grants = RoleGrant.objects.filter(**{fk_name: instance}).select_related("user", "team")
    return sorted(str(grant) for grant in grants)


class AuditedGrantsMixin:
    """Grants edited inline are audited with what they are now, once per save."""

    def save_formset(self, request, form, formset, change):
        super().save_formset(request, form, formset, change)
        if formset.model is RoleGrant and formset.has_changed():
            audit_record_standalone(
                actor=request.user,
                action="role_grant.change",
                target_type=form.instance._meta.model_name,
                target_id=form.instance.pk,
                after={"grants": _grants_text(formset.fk.name, form.instance)},
            )


@admin.register(Team)
class TeamAdmin(AuditedGrantsMixin, AuditedAdmin):
    list_display = ("slug", "name", "created_at")
    search_fields = ("slug", "name")
    inlines = [TeamGrantInline]

    def audit_after(self, obj, form, change) -> dict:
        return {"changed": sorted(form.changed_data), "slug": obj.slug, "name": obj.name}


@admin.register(RoleGrant)
class RoleGrantAdmin(AuditedAdmin):
    list_display = ("user", "role", "team", "created_at")
    list_filter = ("role", "team")
    search_fields = ("user__username", "team__slug")
    list_select_related = ("user", "team")
    autocomplete_fields = ("user", "team")

    def audit_after(self, obj, form, change) -> dict:
        return {
            "user": obj.user.get_username(),
            "role": obj.role,
            "team": obj.team.slug if obj.team_id else None,
        }


@admin.register(ApiToken)
class ApiTokenAdmin(AuditedAdmin):
    list_display = (
        "name",
        "user",
        "prefix",
        "scopes",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    )
    readonly_fields = ("key_hash", "prefix", "created_at", "last_used_at")

    def has_add_permission(self, request):
        # Tokens are created with `manage.py create_api_token`, which shows the raw value once.
        return False

    def audit_after(self, obj, form, change) -> dict:
        return {
            "changed": sorted(form.changed_data),
            "user": obj.user.get_username(),
            "name": obj.name,
            "revoked": obj.revoked_at is not None,
        }


User = get_user_model()


def _role_names(user) -> list[str]:
    return sorted(user.groups.filter(name__in=ALL_ROLES).values_list("name", flat=True))


class SlipwayUserAdmin(AuditedGrantsMixin, UserAdmin, AuditedAdmin):
    """Django's user admin, audited: who changed a person's details, roles (groups),
    staff or superuser flags, and when a password was set."""

    inlines = [UserGrantInline]

    def get_inlines(self, request, obj):
        # Like Django's own two-step "add user": grants once the person exists.
        return self.inlines if obj is not None else []

    def audit_after(self, obj, form, change) -> dict:
        after = {"changed": sorted(form.changed_data)}
        for flag in ("is_active", "is_staff", "is_superuser"):
            if flag in form.changed_data:
                after[flag] = getattr(obj, flag)
        return after

    def save_related(self, request, form, formsets, change):
        before = _role_names(form.instance) if change else []
        super().save_related(request, form, formsets, change)
        after = _role_names(form.instance)
        if before != after:
            audit_record_standalone(
                actor=request.user,
                action="user.roles",
                target_type="user",
                target_id=form.instance.pk,
                before={"roles": before},
                after={"roles": after},
            )

    def add_view(self, request, form_url="", extra_context=None):
        # Django's UserAdmin opens its own transaction for a POST; the audit chain lock
        # must come first (apps.audit.services, lock order), so it nests inside ours.
        if request.method in ("GET", "HEAD", "OPTIONS", "TRACE"):
            return super().add_view(request, form_url, extra_context)
        with audited_atomic():
            return super().add_view(request, form_url, extra_context)

    def user_change_password(self, request, id, form_url=""):
        with audited_atomic():
            response = super().user_change_password(request, id, form_url)
            if request.method == "POST" and response.status_code == 302:
                # Django saved the new password (it redirects only on success); the audit
                # row says that it changed, never the value.
                audit_record_standalone(
                    actor=request.user,
                    action="user.password",
                    target_type="user",
                    target_id=id,
                )
        return response


class SlipwayGroupAdmin(GroupAdmin, AuditedAdmin):
    """Groups carry the organisation-wide roles and their permissions."""

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        audit_record_standalone(
            actor=request.user,
            action="group.permissions",
            target_type="group",
            target_id=form.instance.pk,
            after={
                "name": form.instance.name,
                "permissions": sorted(form.instance.permissions.values_list("codename", flat=True)),
            },
        )


admin.site.unregister(User)
admin.site.register(User, SlipwayUserAdmin)
admin.site.unregister(Group)
admin.site.register(Group, SlipwayGroupAdmin)


class SignInLockoutAdmin(AccessAttemptAdmin):
    """django-axes' failed sign-in records, with an audited unlock in place of delete
    (AXES_ENABLE_ADMIN is off so this is the only admin for them)."""

    actions = ["unlock"]

    def has_delete_permission(self, request, obj=None):
        # Deleting is how axes unlocks; here it goes through the audited action only.
        return False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description="Unlock: clear the selected failed sign-ins")
    def unlock(self, request, queryset):
        cleared = signin_lockout_clear(attempts=queryset, cleared_by=request.user)
        self.message_user(request, f"Unlocked {cleared} sign-in record(s).", messages.SUCCESS)


admin.site.register(AccessAttempt, SignInLockoutAdmin)
