"""The metrics Slipway stores, their units, and which of them have service-level objectives."""

from __future__ import annotations

from django.db import models


class Metric(models.TextChoices):
    LATENCY_P50_MS = "latency_p50_ms", "p50 latency (ms)"
    LATENCY_P95_MS = "latency_p95_ms", "p95 latency (ms)"
    LATENCY_P99_MS = "latency_p99_ms", "p99 latency (ms)"
    ERROR_RATE = "error_rate", "error rate"
    REQUEST_RATE = "request_rate", "requests per second"
    COST_PER_HOUR = "cost_per_hour", "cost per hour"
    COST_PER_DAY = "cost_per_day", "cost per day"
    COST_PER_1K_PREDICTIONS = "cost_per_1k_predictions", "cost per 1,000 predictions"
    DRIFT_PSI = "drift_psi", "drift (PSI)"


METRIC_NAMES = frozenset(Metric.values)

# ServiceEnvironment.slo() key -> the metric it bounds (from above: value > threshold is bad).
SLO_METRICS: dict[str, str] = {
    "p95_latency_ms": Metric.LATENCY_P95_MS,
    "error_rate": Metric.ERROR_RATE,
    "cost_per_day": Metric.COST_PER_DAY,
    "drift_psi": Metric.DRIFT_PSI,
}

# The numbers the fleet overview shows; a target with a latest value of none of them is
# "unknown" there (ServiceEnvironment.has_metrics, kept by the poll).
FLEET_METRICS: tuple[str, ...] = (
    Metric.LATENCY_P95_MS,
    Metric.ERROR_RATE,
    Metric.COST_PER_DAY,
    Metric.DRIFT_PSI,
)

# Latency quantiles and the metric each one feeds.
LATENCY_QUANTILES: dict[str, str] = {
    "0.5": Metric.LATENCY_P50_MS,
    "0.95": Metric.LATENCY_P95_MS,
    "0.99": Metric.LATENCY_P99_MS,
}


def format_value(metric: str, value: float | None) -> str:
    """A value as people read it on a page: 231 ms, 1.20 %, $3.41/day, PSI 0.031."""
    if value is None:
        return "—"
    if metric.startswith("latency_"):
        return f"{value:,.0f} ms" if value >= 10 else f"{value:.1f} ms"
    if metric == Metric.ERROR_RATE:
        return f"{value * 100:.2f} %"
    if metric == Metric.REQUEST_RATE:
        return f"{value:,.1f}/s"
    if metric == Metric.COST_PER_HOUR:
        return f"${value:,.3f}/h"
    if metric == Metric.COST_PER_DAY:
        return f"${value:,.2f}/day"
    if metric == Metric.COST_PER_1K_PREDICTIONS:
        return f"${value:,.4f}"
    if metric == Metric.DRIFT_PSI:
        return f"{value:.3f}"
    return f"{value:g}"
