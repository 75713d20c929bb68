"""Metric sources behind one interface (``sources.base.Source``), chosen by configuration.

``METRICS_BACKEND=prometheus``: ``prometheus`` (latency, errors, requests), ``drift``
(PSI from Prometheus's prediction-score histogram) and ``cost`` (Kubernetes pod requests
or OpenCost, per ``METRICS_COST_BACKEND``). ``METRICS_BACKEND=demo``: ``demo`` alone.
"""

from __future__ import annotations

from apps.metrics import conf
from apps.metrics.sources.base import (
    MetricsConfigError,
    Reading,
    Source,
    SourceError,
    SourceUnavailable,
    Target,
)

__all__ = [
    "MetricsConfigError",
    "Reading",
    "Source",
    "SourceError",
    "SourceUnavailable",
    "Target",
    "build_source",
    "configured_source_names",
]


def configured_source_names() -> list[str]:
    """The sources this configuration polls, without building them (for health pages)."""
    backend = conf.get("METRICS_BACKEND")
    if backend == "demo":
        return ["demo"]
    if backend != "prometheus":
        raise MetricsConfigError(f"METRICS_BACKEND={backend!r}: use 'prometheus' or 'demo'.")
    names = ["prometheus", "drift"]
    if conf.get("METRICS_COST_BACKEND"):
        names.append("cost")
    return names


def build_source(name: str) -> Source:
    """One configured source by name; ``MetricsConfigError`` when it cannot be set up."""
    if name == "demo":
        from apps.metrics.sources.demo import DemoSource

        return DemoSource.from_conf()
    if name == "prometheus":
        from apps.metrics.sources.prometheus import PrometheusSource

        return PrometheusSource.from_conf()
    if name == "drift":
        from apps.metrics.sources.drift import DriftSource

        return DriftSource.from_conf()
    if name == "cost":
        backend = conf.get("METRICS_COST_BACKEND")
        if backend == "kubernetes":
            from apps.metrics.sources.cost import KubernetesCostSource

            return KubernetesCostSource.from_conf()
        if backend == "opencost":
            from apps.metrics.sources.cost import OpenCostSource

            return OpenCostSource.from_conf()
        raise MetricsConfigError(
            f"METRICS_COST_BACKEND={backend!r}: use 'kubernetes', 'opencost' or '' (off)."
        )
    raise MetricsConfigError(f"There is no metric source called {name!r}.")
