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
