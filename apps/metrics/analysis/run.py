"""One call for the step controller: read a window from Prometheus and judge it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from apps.metrics.analysis.config import parse_analysis_config
from apps.metrics.analysis.inputs import AnalysisInputs
from apps.metrics.analysis.reader import AnalysisReader
from apps.metrics.analysis.thresholds import Thresholds
from apps.metrics.analysis.verdict import Verdict, analyse
from apps.metrics.sources.promapi import PrometheusClient
from apps.metrics.sources.prometheus import client_from_conf


@dataclass(frozen=True)
class Analysis:
    verdict: Verdict
    inputs: AnalysisInputs
    thresholds: Thresholds

    def as_dict(self) -> dict:
        """What to store and audit with the step: the verdict, its numbers, its limits."""
        return {
            **self.verdict.as_dict(),
            "candidate": self.inputs.candidate.revision,
            "stable": self.inputs.stable.revision,
            "start": self.inputs.start.isoformat(),
            "end": self.inputs.end.isoformat(),
            "thresholds": self.thresholds.as_dict(),
            # The traffic each side saw (and, for a shadow, how many mirrored answers
            # were compared): the report people read next to the checks.
            "requests": {
                "candidate": _finite(self.inputs.candidate.requests),
                "stable": _finite(self.inputs.stable.requests),
            },
            "compared": _finite(self.inputs.compared),
            "agreed": _finite(self.inputs.agreed),
        }


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def analysis_run(
    *,
    environment: str,
    service: str,
    runtime: str,
    candidate: str,
    stable: str,
    start: datetime,
    end: datetime,
    config: Mapping | None = None,
    client: PrometheusClient | None = None,
) -> Analysis:
    """Judge ``candidate`` against ``stable`` over ``[start, end]``.

    ``config`` is the service's analysis config, ``{"thresholds": {...}, "promql":
    {...}}`` (both optional). Raises ``ThresholdError`` / ``MetricsConfigError`` for a bad
    config and ``SourceUnavailable`` when Prometheus cannot be read: the caller pauses the
    step rather than promote on no data. Reads only; storing the verdict is the caller's.
    """
    parsed = parse_analysis_config(config, environment=environment, runtime=runtime)
    thresholds, queries = parsed.thresholds, parsed.queries
    own_client = client is None
    client = client or client_from_conf()
    try:
        inputs = AnalysisReader(client, queries=queries).read(
            environment=environment,
            service=service,
            candidate=candidate,
            stable=stable,
            start=start,
            end=end,
        )
    finally:
        if own_client:
            client.close()
    return Analysis(analyse(inputs, thresholds=thresholds), inputs, thresholds)
