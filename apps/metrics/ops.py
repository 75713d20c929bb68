"""What metrics adds to ``/metrics``: each metric source's staleness, the age of its
last good answer and its failures in a row. Registered in ``MetricsConfig.ready()``."""

from __future__ import annotations

import math
from collections.abc import Iterator

from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, Metric

from apps.core.ops import METRICS_PREFIX as P
from apps.metrics import selectors


def source_metrics() -> Iterator[Metric]:
    now = timezone.now()
    stale = GaugeMetricFamily(
        f"{P}_metrics_source_stale",
        "1 when a metric source's figures are stale (failing, never read, or too old).",
        labels=["source"],
    )
    age = GaugeMetricFamily(
        f"{P}_metrics_source_last_success_age_seconds",
        "Seconds since a metric source last answered (+Inf: never).",
        labels=["source"],
    )
    failures = GaugeMetricFamily(
        f"{P}_metrics_source_consecutive_failures",
        "Polls of a metric source that failed in a row.",
        labels=["source"],
    )
    for status in selectors.source_health(now=now):
        stale.add_metric([status.source], 1.0 if status.is_stale else 0.0)
        age.add_metric(
            [status.source],
            (now - status.last_success_at).total_seconds() if status.last_success_at else math.inf,
        )
        failures.add_metric([status.source], status.consecutive_failures)
    yield from (stale, age, failures)
