"""Numbers as on-call reads them under stress: every value with its SLO state in words
(not colour alone) and how long a breach has lasted."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from apps.metrics.catalog import SLO_METRICS, format_value

# Metric -> the ServiceEnvironment.slo() key that bounds it.
SLO_KEY_OF = {metric: key for key, metric in SLO_METRICS.items()}
LABELS = {
    "latency_p95_ms": "p95",
    "error_rate": "errors",
    "request_rate": "requests",
    "cost_per_day": "cost/day",
    "drift_psi": "drift (PSI)",
}

# The dashboard's numbers, each with the ServiceEnvironment.slo() key bounding it (or None).
KPI_LABELLED = tuple((metric, SLO_KEY_OF.get(metric)) for metric in LABELS)


@dataclass(frozen=True)
class MetricCell:
    metric: str
    label: str
    text: str  # "324 ms"
    state: str  # "breach" | "ok" | "unknown" | "none" (no SLO) | "missing" (no value)
    note: str  # "breaching SLO 250 ms since 03:39 (4 min)", "within SLO 250 ms", ...
    threshold_text: str = ""


def since_text(since: datetime | None, *, now: datetime | None = None) -> str:
    """'since 03:39 (4 min)': the local clock time and the age, rounded down to minutes."""
    if since is None:
        return ""
    now = now or timezone.now()
    minutes = max(0, int((now - since).total_seconds() // 60))
    age = f"{minutes} min" if minutes < 120 else f"{minutes // 60} h {minutes % 60} min"
    return f"since {timezone.localtime(since):%H:%M} ({age})"


def metric_cell(
    metric: str,
    value: float | None,
    *,
    state: str | None,
    threshold: float | None,
    since: datetime | None = None,
    now: datetime | None = None,
) -> MetricCell:
    """One number with its SLO verdict in words."""
    label = LABELS.get(metric, metric)
    limit = format_value(metric, threshold) if threshold is not None else ""
    if value is None:
        return MetricCell(metric, label, "—", "missing", "", limit)
    text = format_value(metric, value)
    if threshold is None or metric not in SLO_KEY_OF:
        return MetricCell(metric, label, text, "none", "", limit)
    if state == "breach":
        when = since_text(since, now=now)
        note = f"breaching SLO {limit}" + (f" {when}" if when else "")
        return MetricCell(metric, label, text, "breach", note, limit)
    if state == "ok":
        return MetricCell(metric, label, text, "ok", f"within SLO {limit}", limit)
    return MetricCell(metric, label, text, "unknown", f"SLO {limit}, not judged yet", limit)


def breach_summary(breaches: dict, *, now: datetime | None = None) -> str:
    """'p95 324 ms over SLO 250 ms since 03:39 (4 min)' for every breached SLO, the
    oldest first: the text the rollback reason starts from. SLOs breached since the same
    poll come in the order of ``LABELS`` (latency first), not in the order the database
    happened to return them."""
    parts = []
    order = {metric: index for index, metric in enumerate(LABELS)}
    for breach in sorted(
        breaches.values(),
        key=lambda b: (b.since or timezone.now(), order.get(b.metric, len(order))),
    ):
        label = LABELS.get(breach.metric, breach.metric)
        value = format_value(breach.metric, breach.value)
        limit = format_value(breach.metric, breach.threshold)
        parts.append(f"{label} {value} over SLO {limit} {since_text(breach.since, now=now)}")
    return "; ".join(parts)


def first_breach_start(breaches: dict) -> datetime | None:
    starts = [b.since for b in breaches.values() if b.since is not None]
    return min(starts) if starts else None
