from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "apps.notifications"
    label = "notifications"
    verbose_name = "Notifications"

    def ready(self) -> None:
        # /metrics reports deliveries by state (controlplane imports no app).
        from apps.core.ops import register_metrics_collector
        from apps.notifications.ops import notification_metrics

        register_metrics_collector("notifications", notification_metrics)
