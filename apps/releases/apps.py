from django.apps import AppConfig


class ReleasesConfig(AppConfig):
    name = "apps.releases"
    label = "releases"

    def ready(self) -> None:
        # /metrics reports releases by state and the deploy queue (controlplane imports
        # no app).
        from apps.core.ops import register_metrics_collector
        from apps.releases.ops import release_metrics

        register_metrics_collector("releases", release_metrics)

        # The audit page filters by service; only this app knows what belongs to one.
        from apps.audit.scopes import register_service_scope
        from apps.releases.audit_scope import service_audit_scope

        register_service_scope("releases", service_audit_scope)
