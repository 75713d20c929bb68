"""What the registry adds to ``/metrics``: the age of the last good MLflow sync and
whether the mirror is stale, as the pages show it. Registered in
``RegistryConfig.ready()``."""

from __future__ import annotations

import math
from collections.abc import Iterator

from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, Metric

from apps.core.ops import METRICS_PREFIX as P
from apps.registry import selectors


def registry_metrics() -> Iterator[Metric]:
    status = selectors.sync_status()
    age = (
        (timezone.now() - status.last_success_at).total_seconds()
        if status.last_success_at
        else math.inf  # never synced: infinitely stale, so "age > X" alerts fire
    )
    yield GaugeMetricFamily(
        f"{P}_registry_last_sync_age_seconds",
        "Seconds since the last good sync of the MLflow registry mirror (+Inf: never).",
        value=age,
    )
    yield GaugeMetricFamily(
        f"{P}_registry_sync_stale",
        "1 when the registry mirror is stale (never read, failing, or older than three "
        "sync intervals), as the pages show it.",
        value=1.0 if status.is_stale else 0.0,
    )
