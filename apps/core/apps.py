from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "apps.core"
    label = "core"
    verbose_name = "Core"

    def ready(self) -> None:
        # /readyz checks every process needs; other apps add theirs in their own ready().
        from apps.core.ops import register_readiness_check
        from apps.core.probes import check_broker, check_database

        register_readiness_check("database", check_database, on_calling_thread=True)
        register_readiness_check("broker", check_broker)
