from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "apps.registry"
    label = "registry"
    verbose_name = "Model registry"

    def ready(self) -> None:
        # /metrics reports the mirror's age (controlplane imports no app).
        from apps.core.ops import register_metrics_collector
        from apps.registry.ops import registry_metrics

        register_metrics_collector("registry", registry_metrics)
