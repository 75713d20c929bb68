"""What notifications add to ``/metrics``: deliveries by channel and state (alert on
``failed`` growing, or ``pending`` piling up: a receiver or the mail server is down).
Registered in ``NotificationsConfig.ready()``."""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Count
from prometheus_client.core import GaugeMetricFamily, Metric

from apps.core.ops import METRICS_PREFIX as P
from apps.notifications.events import Channel, DeliveryState
from apps.notifications.models import Delivery


def notification_metrics() -> Iterator[Metric]:
    counts = {
        (row["channel"], row["state"]): row["n"]
        for row in Delivery.objects.values("channel", "state").annotate(n=Count("pk"))
    }
    family = GaugeMetricFamily(
        f"{P}_notification_deliveries",
        "Notification deliveries by channel and state (failed: gave up after the last "
        "attempt or a permanent error; see the admin).",
        labels=["channel", "state"],
    )
    for channel in Channel.values:
        for state in DeliveryState.values:
            family.add_metric([channel, state], float(counts.get((channel, state), 0)))
    yield family
