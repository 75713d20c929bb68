"""Drift: the population stability index (PSI) of live prediction scores against the
score histogram the model version was registered with.

The live histogram comes from Prometheus (the ``prediction_scores`` template: predictions
per cumulative ``le`` bucket over ``METRICS_DRIFT_WINDOW``), one query per environment;
the baseline is ``ModelVersion.score_baseline`` (``{"le": [...], "counts": [...]}``,
bucket i = (le[i-1], le[i]], bucket 0 = (-inf, le[0]], counts not cumulative).

    PSI = sum over buckets i of (a_i - e_i) * ln(a_i / e_i)

with a_i the live share and e_i the baseline share of bucket i, each share that is 0
replaced by ``METRICS_DRIFT_EPSILON`` (1e-4). Below 0.1 the populations match; 0.1 to
0.25 is worth watching; above 0.25 act. Details in docs/metrics.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime

from apps.metrics import conf
from apps.metrics.catalog import Metric
from apps.metrics.sources.base import Reading, Target
from apps.metrics.sources.promapi import PrometheusClient, finite
from apps.metrics.sources.prometheus import (
    by_service,
    client_from_conf,
    grouped_queries,
    run_query,
    window_from_conf,
)
from apps.metrics.sources.templates import TemplateResolver

PSI_WATCH = 0.1
PSI_ACT = 0.25
_BOUND_TOLERANCE = 1e-9


def psi(expected: Sequence[float], actual: Sequence[float], *, epsilon: float = 1e-4) -> float:
    """Population stability index of ``actual`` against ``expected`` (counts per bucket,
    same buckets, not cumulative). Shares of 0 count as ``epsilon``."""
    if len(expected) != len(actual) or not expected:
        raise ValueError("expected and actual need the same, non-zero number of buckets")
    total_e, total_a = float(sum(expected)), float(sum(actual))
    if total_e <= 0 or total_a <= 0:
        raise ValueError("a histogram with no observations has no distribution")
    value = 0.0
    for e_count, a_count in zip(expected, actual, strict=True):
        e = max(e_count / total_e, epsilon)
        a = max(a_count / total_a, epsilon)
        value += (a - e) * math.log(a / e)
    return value


def live_counts_on_baseline(
    bounds: Sequence[float], cumulative: Mapping[float, float]
) -> list[float] | None:
    """Live predictions per baseline bucket, from Prometheus's cumulative ``le`` counts.

    Every baseline bound must be one of the live bounds (the live histogram may be finer);
    what lies above the last baseline bound (the ``+Inf`` bucket's extra) joins the last
    bucket, since the baseline's last bound covers every score it saw. ``None`` when the
    bounds do not line up.
    """
    live_bounds = sorted(cumulative)
    if not live_bounds:
        return None

    def at(bound: float) -> float | None:
        exact = cumulative.get(bound)  # the usual case: both bounds parsed from "0.1"
        if exact is not None:
            return exact
        for candidate in live_bounds:
            if abs(candidate - bound) <= _BOUND_TOLERANCE * max(1.0, abs(bound)):
                return cumulative[candidate]
        return None

    counts, previous = [], 0.0
    for bound in bounds:
        value = at(bound)
        if value is None:
            return None
        counts.append(max(value - previous, 0.0))
        previous = max(previous, value)
    total = cumulative[live_bounds[-1]]  # +Inf when exported, else the largest bound
    counts[-1] += max(total - previous, 0.0)
    return counts


class DriftSource:
    name = "drift"

    def __init__(
        self,
        client: PrometheusClient,
        *,
        window: str = "30m",
        window_seconds: int = 1800,
        min_count: int = 100,
        epsilon: float = 1e-4,
    ):
        self.client = client
        self.window = window
        self.window_seconds = window_seconds
        self.min_count = min_count
        self.epsilon = epsilon
        self.requests_sent = 0
        self.notes: dict[tuple[str, str], str] = {}  # why a target got no PSI this cycle

    @classmethod
    def from_conf(cls) -> DriftSource:
        window, seconds = window_from_conf("METRICS_DRIFT_WINDOW")
        return cls(
            client_from_conf(),
            window=window,
            window_seconds=seconds,
            min_count=int(conf.get("METRICS_DRIFT_MIN_COUNT")),
            epsilon=float(conf.get("METRICS_DRIFT_EPSILON")),
        )

    def poll(self, targets: Sequence[Target], *, at: datetime) -> list[Reading]:
        self.notes = {}
        with_baseline = [t for t in targets if t.score_baseline]
        for target in targets:
            if not target.score_baseline:
                self.notes[target.key] = f"{target.model_version or 'the version'} has no baseline"
        before = self.client.requests_sent
        readings: list[Reading] = []
        try:
            for environment, template, services in grouped_queries(
                with_baseline, ("prediction_scores",), TemplateResolver()
            ):
                query = template.render(environment=environment, window=self.window, quantile="")
                samples = run_query(self.client, template, query, environment=environment, at=at)
                live: dict[str, dict[float, float]] = {}
                for (service, le), value in by_service(
                    samples, template, environment=environment, extra="le"
                ).items():
                    try:
                        bound = float(le)  # "+Inf" parses to inf
                    except ValueError:
                        continue
                    if service in services:
                        live.setdefault(service, {})[bound] = value if finite(value) else 0.0
                for target in with_baseline:
                    if target.environment == environment and target.service in services:
                        reading = self._psi(target, live.get(target.service, {}), at)
                        if reading is not None:
                            readings.append(reading)
        finally:
            self.requests_sent = self.client.requests_sent - before
        return readings

    def _psi(self, target: Target, cumulative: dict[float, float], at) -> Reading | None:
        baseline = target.score_baseline or {}
        counts = live_counts_on_baseline(baseline.get("le") or [], cumulative)
        if counts is None:
            self.notes[target.key] = (
                "the live score buckets do not include every baseline bound"
                if cumulative
                else "no live prediction scores"
            )
            return None
        if sum(counts) < self.min_count:
            self.notes[target.key] = (
                f"{sum(counts):.0f} predictions in {self.window}, fewer than {self.min_count}"
            )
            return None
        value = psi(baseline["counts"], counts, epsilon=self.epsilon)
        return Reading(
            service=target.service,
            environment=target.environment,
            metric=Metric.DRIFT_PSI,
            value=value,
            time=at,
            window_seconds=self.window_seconds,
        )

    def close(self) -> None:
        self.client.close()
