from django.apps import AppConfig


class MetricsConfig(AppConfig):
    name = "apps.metrics"
    label = "metrics"

    def ready(self) -> None:
        # The release page belongs to releases, which must not import metrics: this app
        # adds its panel through the registry releases keeps for that.
        from apps.metrics.panels import slo_panel
        from apps.releases.panels import register_panel

        register_panel(slo_panel)
