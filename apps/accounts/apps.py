from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _ensure_roles(sender, **kwargs):
    from apps.accounts.services import roles_ensure_groups

    roles_ensure_groups()


def _audit_lockout(sender, request=None, username=None, ip_address=None, **kwargs):
    from django.conf import settings

    from apps.accounts.signin import signin_lockout_record

    # django-axes sends user_locked_out on every failure while locked (each one renews
    # the cool-off); the chain gets one row per lockout: the failure that reached the limit.
    failures = getattr(request, "axes_failures_since_start", None)
    if failures == settings.AXES_FAILURE_LIMIT:
        signin_lockout_record(username=username, ip_address=ip_address, failures=failures)


class AccountsConfig(AppConfig):
    name = "apps.accounts"
    label = "accounts"
    verbose_name = "Accounts and roles"

    def ready(self):
        # Signals, all connected here. Role groups and their permissions must exist after
        # every migrate or flush, and permissions themselves only exist after migrate.
        post_migrate.connect(_ensure_roles, sender=self, dispatch_uid="slipway-roles")
        # And django-axes' lockout signal: a lockout must reach the audit chain.
        from axes.signals import user_locked_out

        user_locked_out.connect(_audit_lockout, dispatch_uid="slipway-lockout-audit")
