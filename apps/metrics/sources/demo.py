"""The demo cluster simulator's metrics: synthetic readings for every live release.

Chosen with ``METRICS_BACKEND=demo`` (``make demo``); the UI says the cluster is
simulated. Values are deterministic for a (service, environment, poll slot) and move
smoothly over the day, so charts look alive and tests can rely on them:

- p95 latency at 50-60 % of the target's p95 SLO (p50 = p95 / 2.4, p99 = 1.5 x p95),
  a few percent of noise; without an SLO p50 is 45-65 ms. Error rate at 20-40 % of the
  error-rate SLO (0.2-0.4 % without one). 20-80 requests/s on a daily curve; drift PSI
  0.01-0.04. Healthy versions stay well inside their SLOs, whatever those are;
- cost from the release's own serving configuration: ``replicas.min`` pods, each
  requesting ``resources.cpu/memory/gpu``, priced with ``METRICS_PRICES``.

Model version tags make a version misbehave, so the approve -> deploy -> regress ->
roll back story can be played:

- ``demo.latency_multiplier`` (e.g. "2.5"): latencies x that (2.5 puts p95 at 1.25-1.5
  x its SLO); the error rate grows with it too (x (1 + 4 (m - 1)): 2.5 gives 7x, 1.4-2.8
  x its SLO), so both SLOs breach;
- ``demo.error_rate`` (e.g. "0.05"): this error rate instead;
- ``demo.drift_psi`` (e.g. "0.3"): this PSI instead; in a shadow run (mirrored requests)
  the candidate also agrees less often with the stable model (99% without the tag).
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from apps.metrics import conf
from apps.metrics.catalog import Metric
from apps.metrics.sources.base import Reading, Target
from apps.metrics.sources.cost import cost_readings, hourly_price, prices_from_conf

TAG_LATENCY = "demo.latency_multiplier"
TAG_ERROR_RATE = "demo.error_rate"
TAG_DRIFT = "demo.drift_psi"


def _unit(seed: str) -> float:
    """A stable number in [0, 1) for a string."""
    return int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big") / 2**64


def _tag(target: Target, name: str) -> float | None:
    raw = (target.model_tags or {}).get(name)
    try:
        value = float(raw) if raw is not None else None
    except (TypeError, ValueError):
        return None
    return value if value is not None and math.isfinite(value) and value >= 0 else None


def demo_hourly_cost(config, prices) -> float:
    """Cost per hour of ``replicas.min`` pods with the configuration's requests."""
    from kubernetes.utils import parse_quantity

    replicas = config.get("replicas") or {}
    pods = replicas.get("min", 1) if isinstance(replicas, dict) else replicas
    resources = config.get("resources") or {}
    try:
        totals = {
            "cpu": parse_quantity(str(resources.get("cpu", "250m"))),
            "memory": parse_quantity(str(resources.get("memory", "512Mi"))),
            "gpu": Decimal(int(resources.get("gpu", 0) or 0)),
        }
        pods = max(int(pods), 1)
    except (ValueError, TypeError):
        return 0.0
    return hourly_price({k: v * pods for k, v in totals.items()}, prices)


class DemoSource:
    name = "demo"

    def __init__(self, *, poll_seconds: int = 30, prices=None):
        self.poll_seconds = max(int(poll_seconds), 1)
        self.prices = prices
        self.requests_sent = 0

    @classmethod
    def from_conf(cls) -> DemoSource:
        return cls(poll_seconds=conf.get("METRICS_POLL_SECONDS"), prices=prices_from_conf())

    def poll(self, targets: Sequence[Target], *, at: datetime) -> list[Reading]:
        prices = self.prices or prices_from_conf()
        slot = int(at.timestamp() // self.poll_seconds)
        day = 2 * math.pi * (slot * self.poll_seconds % 86400) / 86400
        readings: list[Reading] = []
        for target in targets:
            rng = random.Random(f"{target.service}:{target.environment}:{slot}")  # noqa: S311
            base = _unit(f"{target.service}:{target.environment}")
            slo = target.slo or {}
            multiplier = _tag(target, TAG_LATENCY) or 1.0
            if slo.get("p95_latency_ms"):
                p50 = slo["p95_latency_ms"] * (0.5 + 0.1 * base) / 2.4
            else:
                p50 = 45 + 20 * base
            p50 *= multiplier * (1 + rng.uniform(-0.05, 0.05))
            error_rate = _tag(target, TAG_ERROR_RATE)
            if error_rate is None:
                share = 0.2 + 0.2 * base
                error_rate = share * slo["error_rate"] if slo.get("error_rate") else share / 100
                error_rate *= (1 + 4 * max(multiplier - 1, 0)) * (1 + rng.uniform(-0.1, 0.1))
            drift = _tag(target, TAG_DRIFT)
            if drift is None:
                drift = 0.01 + 0.03 * _unit(f"{target.model_version}:drift")
                drift *= 1 + rng.uniform(-0.1, 0.1)
            rps = (20 + 60 * base) * (1 + 0.3 * math.sin(day + 6 * base))
            values = {
                Metric.LATENCY_P50_MS: p50,
                Metric.LATENCY_P95_MS: p50 * 2.4 * (1 + rng.uniform(-0.03, 0.03)),
                Metric.LATENCY_P99_MS: p50 * 3.6 * (1 + rng.uniform(0.0, 0.05)),
                Metric.ERROR_RATE: min(error_rate, 1.0),
                Metric.REQUEST_RATE: rps,
                Metric.DRIFT_PSI: drift,
            }
            readings += [
                Reading(target.service, target.environment, metric, value, at)
                for metric, value in values.items()
            ]
            readings += cost_readings(target, demo_hourly_cost(target.config or {}, prices), at)
        return readings

    def close(self) -> None:
        pass


# --- per-revision figures for the step controller (progressive delivery) ---------------

# The whole service answers this many requests per second in the demo; a canary step
# sends its weight's share to the candidate, a shadow step mirrors its share to it.
DEMO_ANALYSIS_RATE = 50.0
_LATENCY_BOUNDS_MS = (25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, math.inf)
_SCORE_BOUNDS = (*(round(0.1 * i, 1) for i in range(1, 10)), math.inf)


def _demo_p95_ms(tags, slo_p95_ms: float | None) -> float:
    base = 0.55 * slo_p95_ms if slo_p95_ms else 120.0
    return base * (_tag_value(tags, TAG_LATENCY) or 1.0)


def _demo_error_rate(tags, slo_error_rate: float | None) -> float:
    explicit = _tag_value(tags, TAG_ERROR_RATE)
    if explicit is not None:
        return min(explicit, 1.0)
    multiplier = _tag_value(tags, TAG_LATENCY) or 1.0
    base = 0.3 * slo_error_rate if slo_error_rate else 0.003
    return min(1.0, base * (1 + 4 * (multiplier - 1)))


def _tag_value(tags, name: str) -> float | None:
    raw = (tags or {}).get(name)
    try:
        value = float(raw) if raw is not None else None
    except (TypeError, ValueError):
        return None
    return value if value is not None and math.isfinite(value) and value >= 0 else None


def _latency_histogram(p95_ms: float, requests: float):
    """Exponential latencies with this p95, as cumulative bucket counts."""
    from apps.metrics.analysis.checks import Histogram

    rate = math.log(20) / p95_ms
    return Histogram.from_buckets(
        {
            bound: requests if math.isinf(bound) else requests * (1 - math.exp(-rate * bound))
            for bound in _LATENCY_BOUNDS_MS
        }
    )


def _shifted_shares(target_psi: float) -> list[float]:
    """Ten score-bucket shares whose PSI against the uniform baseline is ``target_psi``:
    a mixture of the baseline with everything in the top bucket, found by bisection."""

    def shares(a: float) -> list[float]:
        return [(1 - a) * 0.1 + (a if i == 9 else 0.0) for i in range(10)]

    def psi_of(values: list[float]) -> float:
        return sum((v - 0.1) * math.log(max(v, 1e-6) / 0.1) for v in values)

    low, high = 0.0, 0.99
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if psi_of(shares(middle)) < target_psi else (low, middle)
    return shares(low)


def _score_histogram(tags, predictions: float):
    from apps.metrics.analysis.checks import Histogram

    drift = _tag_value(tags, TAG_DRIFT)
    shares = _shifted_shares(drift) if drift else [0.1] * 10
    running, buckets = 0.0, {}
    for bound, share in zip(_SCORE_BOUNDS, shares, strict=True):
        running += share * predictions
        buckets[bound] = running
    return Histogram.from_buckets(buckets)


def demo_analysis_inputs(
    *,
    candidate: str,
    stable: str,
    candidate_tags,
    stable_tags,
    slo_p95_ms: float | None,
    slo_error_rate: float | None,
    share_percent: int,
    mirrored: bool,
    start: datetime,
    end: datetime,
):
    """What Prometheus would answer for a canary (or shadow) window in the simulated
    cluster: each revision's latency, errors and score distribution from its model
    version's demo tags (``demo.latency_multiplier``, ``demo.error_rate``,
    ``demo.drift_psi``: a candidate with fine latency and a shifted output
    distribution). Deterministic, so the README story plays the same every time."""
    from apps.metrics.analysis.inputs import AnalysisInputs, RevisionInputs

    seconds = max(0.0, (end - start).total_seconds())
    total = DEMO_ANALYSIS_RATE * seconds
    candidate_requests = total * share_percent / 100
    stable_requests = total if mirrored else total - candidate_requests

    def revision(name, tags, requests):
        return RevisionInputs(
            revision=name,
            latency_ms=_latency_histogram(_demo_p95_ms(tags, slo_p95_ms), requests),
            requests=requests,
            errors=requests * _demo_error_rate(tags, slo_error_rate),
            scores=_score_histogram(tags, requests),
        )

    compared = agreed = None
    if mirrored:
        # Both models answered every mirrored request, so their answers can be compared.
        compared = candidate_requests
        agreed = compared * _demo_agreement(candidate_tags)
    return AnalysisInputs(
        candidate=revision(candidate, candidate_tags, candidate_requests),
        stable=revision(stable, stable_tags, stable_requests),
        start=start,
        end=end,
        agreed=agreed,
        compared=compared,
    )


def _demo_agreement(tags) -> float:
    """How often a candidate's class matches the stable's on the same request: a retrained
    model of the same data agrees on 99%; a shifted output distribution moves a share
    ``a`` of the scores into the top bucket, and about half of those cross the 0.5
    decision threshold and change class."""
    drift = _tag_value(tags, TAG_DRIFT)
    moved = (_shifted_shares(drift)[9] - 0.1) / 0.9 if drift else 0.0
    return max(0.0, 0.99 - 0.5 * moved)
