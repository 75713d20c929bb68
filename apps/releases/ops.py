"""What releases adds to ``/metrics``: releases by environment and state, approvals
pending, the deploy queue and the age of its oldest entry. Read from the database at
scrape time, so every process answers alike and no code that changes state keeps
counters. Registered in ``ReleasesConfig.ready()``."""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, Metric

from apps.core.ops import METRICS_PREFIX as P
from apps.releases.models import Environment, Release, ReleaseState


def release_metrics() -> Iterator[Metric]:
    now = timezone.now()
    environments = list(Environment.objects.order_by("name").values_list("name", flat=True))
    counts = {
        (row["environment__name"], row["state"]): row["n"]
        for row in Release.objects.values("environment__name", "state").annotate(n=Count("id"))
    }
    releases = GaugeMetricFamily(
        f"{P}_releases",
        "Releases by environment and state.",
        labels=["environment", "state"],
    )
    pending = GaugeMetricFamily(
        f"{P}_approvals_pending",
        "Releases waiting for approval, by environment.",
        labels=["environment"],
    )
    queue = GaugeMetricFamily(
        f"{P}_deploy_queue_depth",
        "Approved releases not yet being deployed, by environment.",
        labels=["environment"],
    )
    for env in environments:
        for state in ReleaseState.values:
            releases.add_metric([env, state], counts.get((env, state), 0))
        pending.add_metric([env], counts.get((env, ReleaseState.PENDING_APPROVAL), 0))
        queue.add_metric([env], counts.get((env, ReleaseState.APPROVED), 0))
    oldest = Release.objects.filter(state=ReleaseState.APPROVED).aggregate(
        oldest=Min("approved_at")
    )["oldest"]
    oldest_age = GaugeMetricFamily(
        f"{P}_deploy_queue_oldest_age_seconds",
        "How long the oldest approved release has waited to be deployed; 0 when none waits.",
        value=max(0.0, (now - oldest).total_seconds()) if oldest else 0.0,
    )
    yield from (releases, pending, queue, oldest_age)
