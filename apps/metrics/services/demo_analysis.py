"""``METRICS_BACKEND=demo``: a canary step or a shadow evaluation judged on the simulated
cluster's per-revision figures, by the same checks as Prometheus's (``make demo`` has no
Prometheus). One function for both, so the demo judges them alike."""

from __future__ import annotations

from datetime import datetime

from apps.metrics.analysis import Analysis, Thresholds, analyse
from apps.metrics.sources.demo import demo_analysis_inputs


def demo_analysis(
    *,
    release,
    stable_release,
    candidate: str,
    stable: str,
    analysis_config: dict | None,
    share_percent: int,
    mirrored: bool,
    start: datetime,
    end: datetime,
) -> Analysis:
    """The analysis of ``release`` (revision ``candidate``) against ``stable_release``
    (revision ``stable``) over [start, end), with the target's SLOs shaping the simulated
    figures and the release's own thresholds judging them."""
    target = release.service.targets.filter(environment=release.environment).first()
    slo = target.slo() if target is not None else {}
    thresholds = Thresholds.from_dict((analysis_config or {}).get("thresholds"))
    inputs = demo_analysis_inputs(
        candidate=candidate,
        stable=stable,
        candidate_tags=release.model_version.tags,
        stable_tags=stable_release.model_version.tags,
        slo_p95_ms=slo.get("p95_latency_ms") or release.service.slo_p95_latency_ms,
        slo_error_rate=slo.get("error_rate") or release.service.slo_error_rate,
        share_percent=share_percent,
        mirrored=mirrored,
        start=start,
        end=end,
    )
    return Analysis(analyse(inputs, thresholds=thresholds), inputs, thresholds)
