from django.apps import AppConfig


class MetricsConfig(AppConfig):
    name = "apps.metrics"
    label = "metrics"

    def ready(self) -> None:
        from apps.core.ops import register_metrics_collector
        from apps.metrics.analysis.config import check_analysis_config
        from apps.metrics.freeze import slo_breach_freezes
        from apps.metrics.ops import source_metrics
        from apps.metrics.panels import shadow_panel, slo_panel
        from apps.releases.analysis_config import register_analysis_config_check
        from apps.releases.freeze import register_freeze_signal
        from apps.releases.panels import register_panel

        # The release page belongs to releases, which must not import metrics: this app
        # adds its panel through the registry releases keeps for that.
        register_panel(slo_panel)
        register_panel(shadow_panel)
        # /metrics reports each source's staleness (controlplane imports no app).
        register_metrics_collector("metrics_sources", source_metrics)
        # Releases into an environment wait while an SLO there is in breach; releases
        # cannot ask metrics (layer order), so metrics tells it through its registry.
        register_freeze_signal(slo_breach_freezes)
        # A release's analysis config is checked when the release is created, with the
        # parse that judges its steps; releases cannot import it, so it is registered.
        register_analysis_config_check(check_analysis_config)
