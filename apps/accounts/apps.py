from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _ensure_roles(sender, **kwargs):
    from apps.accounts.services import roles_ensure_groups

    roles_ensure_groups()


class AccountsConfig(AppConfig):
    name = "apps.accounts"
    label = "accounts"
    verbose_name = "Accounts and roles"

    def ready(self):
        # The one signal in Slipway: role groups and their permissions must exist after
        # every migrate or flush, and permissions themselves only exist after migrate.
        post_migrate.connect(_ensure_roles, sender=self, dispatch_uid="slipway-roles")
