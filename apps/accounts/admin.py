from axes.admin import AccessAttemptAdmin
from axes.models import AccessAttempt
from django.contrib import admin, messages

from apps.accounts.models import ApiToken
from apps.accounts.signin import signin_lockout_clear


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
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
