"""Reads one analysis window for a candidate and its stable revision from Prometheus.

One instant query per family at ``end`` with ``$window`` = ``end - start``, both revisions
in the same query (each side tagged with a ``slipway_side`` label by ``label_replace``,
as the Prometheus source tags latency quantiles), so both are read over exactly the same
window and at most six queries go out per analysis whatever the checks.

Errors, as the metric sources raise them: ``SourceUnavailable`` when Prometheus is down,
slow or answers garbage (the step controller pauses; it never promotes on it), and
``MetricsConfigError`` when Prometheus refuses a template or a template returns the wrong
shape (the message names the template).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime

from apps.core.errors import DomainError
from apps.metrics import conf
from apps.metrics.analysis.checks import Histogram
from apps.metrics.analysis.inputs import AnalysisInputs, RevisionInputs
from apps.metrics.analysis.queries import AnalysisQuery, QuerySet
from apps.metrics.sources.base import MetricsConfigError
from apps.metrics.sources.promapi import PrometheusClient, PrometheusQueryError, Sample

SIDE_LABEL = "slipway_side"
SIDES = ("candidate", "stable")
MIN_WINDOW_SECONDS = 60
# Kubernetes label values, which every revision label above is (and nothing that could
# break out of a PromQL string).
_REVISION = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")


class AnalysisReader:
    """Runs a ``QuerySet`` for one service's candidate and stable revisions."""

    def __init__(
        self,
        client: PrometheusClient,
        *,
        queries: QuerySet,
        prices: Mapping[str, float] | None = None,
    ):
        self.client = client
        self.queries = queries
        self.prices = dict(prices if prices is not None else conf.get("METRICS_PRICES"))

    def read(
        self,
        *,
        environment: str,
        service: str,
        candidate: str,
        stable: str,
        start: datetime,
        end: datetime,
    ) -> AnalysisInputs:
        """Both revisions' figures over ``[start, end]``."""
        for role, revision in (("candidate", candidate), ("stable", stable)):
            if not isinstance(revision, str) or not _REVISION.fullmatch(revision):
                raise DomainError(
                    f"The {role} revision {revision!r} is not a label value (letters, digits, "
                    "'-', '_', '.', at most 63 characters)."
                )
        if candidate == stable:
            raise DomainError(f"Candidate and stable are the same revision ({candidate!r}).")
        if start.tzinfo is None or end.tzinfo is None:
            # A naive time would be read as the server's local time: an hour off, silently.
            raise DomainError("An analysis window needs timezone-aware start and end times.")
        seconds = (end - start).total_seconds()
        if seconds < MIN_WINDOW_SECONDS or seconds != int(seconds):
            raise DomainError(
                f"An analysis window must be whole seconds and at least {MIN_WINDOW_SECONDS} s "
                f"long; {start.isoformat()} to {end.isoformat()} is {seconds:g} s."
            )
        values = {
            "environment": environment,
            "service": service,
            "instance": f"{service}-{environment}",
            "candidate": candidate,
            "stable": stable,
            "window": f"{int(seconds)}s",
            "window_hours": f"{seconds / 3600:.10g}",
            "cpu_core_hour": f"{float(self.prices.get('cpu_core_hour', 0)):.10g}",
            "memory_gib_hour": f"{float(self.prices.get('memory_gib_hour', 0)):.10g}",
        }
        revisions = {"candidate": candidate, "stable": stable}
        before = self.client.requests_sent
        per_side: dict[str, dict] = {side: {} for side in SIDES}
        for family in ("latency_buckets", "requests", "errors", "cost", "score_buckets"):
            query = self.queries.get(family)
            if query is None:
                continue
            samples = self._run_both(query, values, revisions, at=end)
            for side in SIDES:
                mine = [(labels, v) for labels, v in samples if labels.get(SIDE_LABEL) == side]
                per_side[side][family] = (
                    _buckets(mine, query) if family.endswith("_buckets") else _one(mine, query)
                )
        agreed = compared = None
        agreement = self.queries.get("agreement")
        if agreement is not None:
            samples = self._run(agreement, agreement.render(**values), end)
            agreed, compared = _agreement(samples, agreement)
        scale = self.queries.latency_scale
        built = {}
        for side in SIDES:
            got = per_side[side]
            latency = Histogram.from_buckets(got.get("latency_buckets") or {})
            requests = got.get("requests")
            errors = got.get("errors")
            # An error counter often has no series until the first error: with requests
            # counted and no error series, there were no errors.
            if errors is None and requests is not None and self.queries.get("errors"):
                errors = 0.0
            built[side] = RevisionInputs(
                revision=revisions[side],
                latency_ms=latency.scaled(scale) if latency is not None else None,
                requests=requests,
                errors=errors,
                cost=got.get("cost"),
                scores=Histogram.from_buckets(got.get("score_buckets") or {}),
            )
        return AnalysisInputs(
            candidate=built["candidate"],
            stable=built["stable"],
            start=start,
            end=end,
            agreed=agreed,
            compared=compared,
            queries_sent=self.client.requests_sent - before,
        )

    def _run_both(self, query: AnalysisQuery, values, revisions, *, at) -> list[Sample]:
        parts = [
            f"label_replace(({query.render(**values, revision=revisions[side])}), "
            f'"{SIDE_LABEL}", "{side}", "", "")'
            for side in SIDES
        ]
        return self._run(query, " or ".join(parts), at)

    def _run(self, query: AnalysisQuery, promql: str, at: datetime) -> list[Sample]:
        try:
            return self.client.query(promql, at=at)
        except PrometheusQueryError as exc:
            raise MetricsConfigError(
                f"Prometheus refused the analysis PromQL template {query.origin}: "
                f"{exc.message} (errorType {exc.error_type}). The query was: {promql}"
            ) from None


def _one(samples: list[Sample], query: AnalysisQuery) -> float | None:
    if not samples:
        return None
    if len(samples) > 1:
        raise MetricsConfigError(
            f"The analysis PromQL template {query.origin} returned {len(samples)} series for "
            "one revision; aggregate with sum(...) so it returns one."
        )
    return samples[0][1]


def _buckets(samples: list[Sample], query: AnalysisQuery) -> dict[float, float]:
    out: dict[float, float] = {}
    for labels, value in samples:
        try:
            bound = float(labels["le"])  # "+Inf" parses to inf
        except (KeyError, ValueError):
            raise MetricsConfigError(
                f"The analysis PromQL template {query.origin} returned a series without a "
                f"numeric 'le' label ({labels}); aggregate with sum by (le)."
            ) from None
        if bound in out:
            raise MetricsConfigError(
                f"The analysis PromQL template {query.origin} returned two series for the "
                f"bucket le={labels['le']}; aggregate with sum by (le)."
            )
        out[bound] = value
    return out


def _agreement(samples: list[Sample], query: AnalysisQuery) -> tuple[float | None, float | None]:
    if not samples:
        return None, None
    agreed = compared = 0.0
    for labels, value in samples:
        # Without the split every comparison would count as a disagreement: refuse it.
        if labels.get("agree") not in ("true", "false"):
            raise MetricsConfigError(
                f"The analysis PromQL template {query.origin} returned a series whose "
                f'\'agree\' label is not "true" or "false" ({labels}); aggregate with '
                "sum by (agree)."
            )
        if not math.isfinite(value):
            return None, None
        compared += value
        if labels.get("agree") == "true":
            agreed += value
    return agreed, compared
