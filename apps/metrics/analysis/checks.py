"""The analysis checks: pure functions, candidate against stable on the same window.

Each returns a ``CheckResult`` whose ``message`` is the sentence a reviewer reads. Rules
shared by every check:

- too few samples on either side is "inconclusive", never "pass" (a p95 of 30 requests
  or a PSI of 40 predictions says nothing);
- missing data (``None``: no series) and values Prometheus could not compute (NaN, inf:
  0/0 on no traffic) are "inconclusive" too, never read as zero;
- the limits come from ``Thresholds``; the message quotes them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from apps.metrics.analysis.thresholds import Thresholds
from apps.metrics.sources.drift import psi

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"
VERDICTS = (PASS, FAIL, INCONCLUSIVE)
# How each check is called in sentences.
LABELS = {
    "latency_p95": "p95 latency",
    "error_rate": "error rate",
    "cost_per_1k": "cost per 1,000 predictions",
    "output_psi": "output PSI",
    "agreement": "agreement",
}
_BOUND_TOLERANCE = 1e-9


@dataclass(frozen=True)
class CheckResult:
    name: str
    verdict: str
    candidate: float | None
    stable: float | None
    threshold: float
    samples: int  # the smaller side's sample count: what the minimum is judged on
    message: str

    def as_dict(self) -> dict:
        """JSON-ready (NaN and inf become None), to store with the verdict."""
        out = asdict(self)
        for key in ("candidate", "stable", "threshold"):
            value = out[key]
            if value is not None and not math.isfinite(value):
                out[key] = None
        return out


@dataclass(frozen=True)
class Histogram:
    """A Prometheus histogram over a window: upper bounds ascending (the last one +Inf)
    and the cumulative count at each, as ``sum by (le) (increase(x_bucket[w]))`` gives."""

    bounds: tuple[float, ...]
    cumulative: tuple[float, ...]

    @classmethod
    def from_buckets(cls, buckets: Mapping[float, float]) -> Histogram | None:
        """From {le: cumulative count}; ``None`` when there is nothing usable (no
        buckets, no +Inf bucket, a NaN or infinite count)."""
        if not buckets:
            return None
        bounds = tuple(sorted(buckets))
        if not math.isinf(bounds[-1]) or bounds[-1] < 0:
            return None
        counts = [float(buckets[b]) for b in bounds]
        if any(not math.isfinite(c) for c in counts):
            return None
        # increase() extrapolates each bucket on its own, so cumulative counts can dip
        # by a hair; Prometheus's histogram_quantile evens them out the same way.
        running, fixed = 0.0, []
        for count in counts:
            running = max(running, count)
            fixed.append(running)
        return cls(bounds, tuple(fixed))

    @property
    def total(self) -> float:
        return self.cumulative[-1] if self.cumulative else 0.0

    def counts(self) -> list[float]:
        """Observations per bucket (not cumulative)."""
        out, previous = [], 0.0
        for count in self.cumulative:
            out.append(count - previous)
            previous = count
        return out

    def scaled(self, factor: float) -> Histogram:
        """The same histogram with bounds multiplied by ``factor`` (seconds -> ms)."""
        return Histogram(tuple(b * factor for b in self.bounds), self.cumulative)

    def same_bounds(self, other: Histogram) -> bool:
        return len(self.bounds) == len(other.bounds) and all(
            a == b or abs(a - b) <= _BOUND_TOLERANCE * max(1.0, abs(a))
            for a, b in zip(self.bounds, other.bounds, strict=True)
        )


def histogram_quantile(q: float, histogram: Histogram | None) -> float:
    """The ``q`` quantile, interpolated linearly inside its bucket the way PromQL's
    ``histogram_quantile`` does: NaN with no observations or fewer than two buckets; the
    highest finite bound when the quantile falls in the +Inf bucket; the first bound when
    it falls in a first bucket whose bound is <= 0."""
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    if histogram is None or len(histogram.bounds) < 2 or histogram.total <= 0:
        return math.nan
    bounds, cumulative = histogram.bounds, histogram.cumulative
    rank = q * histogram.total
    b = next(i for i, count in enumerate(cumulative) if count >= rank)
    if b == len(bounds) - 1:
        return bounds[-2]
    if b == 0 and bounds[0] <= 0:
        return bounds[0]
    start = 0.0 if b == 0 else bounds[b - 1]
    below = 0.0 if b == 0 else cumulative[b - 1]
    in_bucket = cumulative[b] - below
    if in_bucket <= 0:
        # Only at rank 0 (q = 0) with empty leading buckets: the lowest value lies at the
        # start of the first bucket that has one, not at 0/0.
        b = next(i for i, count in enumerate(cumulative) if count > 0)
        return 0.0 if b == 0 else bounds[b - 1]
    return start + (bounds[b] - start) * ((rank - below) / in_bucket)


def _in_overflow(q: float, histogram: Histogram) -> bool:
    """The quantile lies in the +Inf bucket: the true value is above the highest bound."""
    return len(histogram.cumulative) >= 2 and histogram.cumulative[-2] < q * histogram.total


def _usable(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _num(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _pct(value: float) -> str:
    return f"{100 * value:.2f}%"


def _too_few(label: str, unit: str, need: int, candidate: float, stable: float) -> str:
    short = [
        f"{side} had {count:,.0f}"
        for side, count in (("candidate", candidate), ("stable", stable))
        if count < need
    ]
    return f"{label}: needs {need:,} {unit} per side, {' and '.join(short)}: inconclusive"


class _Judge:
    """Builds one check's results: its name and limit fixed, the rest per outcome."""

    def __init__(self, name: str, threshold: float):
        self.name = name
        self.threshold = threshold

    def __call__(
        self,
        verdict: str,
        message: str,
        *,
        samples: float = 0,
        candidate: float | None = None,
        stable: float | None = None,
    ) -> CheckResult:
        return CheckResult(
            name=self.name,
            verdict=verdict,
            candidate=candidate,
            stable=stable,
            threshold=self.threshold,
            samples=int(samples),
            message=message,
        )


def _missing_sides(candidate, stable) -> str:
    return " and ".join(
        side for side, h in (("candidate", candidate), ("stable", stable)) if h is None
    )


# --- latency -------------------------------------------------------------------------------


def check_latency_p95(
    *, candidate: Histogram | None, stable: Histogram | None, thresholds: Thresholds
) -> CheckResult:
    """p95 latency ratio candidate/stable from each revision's latency histogram (bounds in
    milliseconds) over the window; its observation count is the request count."""
    limit, label = thresholds.latency_p95_ratio_max, LABELS["latency_p95"]
    result = _Judge("latency_p95", limit)
    if candidate is None or stable is None:
        return result(
            INCONCLUSIVE,
            f"{label}: no latency histogram for the {_missing_sides(candidate, stable)}: "
            "inconclusive",
        )
    samples = min(candidate.total, stable.total)
    if samples < thresholds.min_requests:
        need = thresholds.min_requests
        return result(
            INCONCLUSIVE,
            _too_few(label, "requests", need, candidate.total, stable.total),
            samples=samples,
        )
    c_p95, s_p95 = histogram_quantile(0.95, candidate), histogram_quantile(0.95, stable)
    if not (_usable(c_p95) and _usable(s_p95)):
        return result(
            INCONCLUSIVE,
            f"{label}: the histograms have too few buckets to place a p95: inconclusive",
            samples=samples,
        )
    figures = {"samples": samples, "candidate": c_p95, "stable": s_p95}
    if _in_overflow(0.95, stable):
        return result(
            INCONCLUSIVE,
            f"{label}: the stable's p95 is above the highest bucket bound ({_num(s_p95)} ms), "
            "so no ratio can be computed; add larger buckets: inconclusive",
            **figures,
        )
    ratio = c_p95 / s_p95 if s_p95 > 0 else (1.0 if c_p95 <= 0 else math.inf)
    versus = f"{_num(c_p95)} ms vs {_num(s_p95)} ms stable"
    if _in_overflow(0.95, candidate):
        # The candidate's true p95 is above the highest bound: the ratio is a lower bound,
        # enough to fail on, not to pass on.
        if ratio > limit:
            return result(
                FAIL,
                f"{label} above {versus} (over {ratio:.2f}x, limit {limit:.2f}x): fail",
                **figures,
            )
        return result(
            INCONCLUSIVE,
            f"{label} of the candidate is above the highest bucket bound ({_num(c_p95)} ms); "
            "the ratio cannot be told: inconclusive",
            **figures,
        )
    verdict = PASS if ratio <= limit else FAIL
    return result(
        verdict, f"{label} {versus} ({ratio:.2f}x, limit {limit:.2f}x): {verdict}", **figures
    )


# --- errors --------------------------------------------------------------------------------


def check_error_rate(
    *,
    candidate_requests: float | None,
    candidate_errors: float | None,
    stable_requests: float | None,
    stable_errors: float | None,
    thresholds: Thresholds,
) -> CheckResult:
    """Error rate (errors / requests over the window): at most ``error_rate_max`` absolute
    and at most ``error_rate_ratio_max`` x the stable's rate + ``error_rate_floor``."""
    label = LABELS["error_rate"]
    result = _Judge("error_rate", thresholds.error_rate_max)
    counts = (candidate_requests, candidate_errors, stable_requests, stable_errors)
    if not all(_usable(v) for v in counts):
        return result(
            INCONCLUSIVE,
            f"{label}: no usable request or error counts for both revisions: inconclusive",
        )
    # Half a request of slack: increase() extrapolates, so counts are not whole numbers.
    if (
        any(v < 0 for v in counts)
        or candidate_errors > candidate_requests + 0.5
        or stable_errors > stable_requests + 0.5
    ):
        return result(
            INCONCLUSIVE,
            f"{label}: the counts do not add up (more errors than requests, or negative); "
            "check the error and request queries: inconclusive",
        )
    samples = min(candidate_requests, stable_requests)
    if samples < thresholds.min_requests:
        return result(
            INCONCLUSIVE,
            _too_few(
                label, "requests", thresholds.min_requests, candidate_requests, stable_requests
            ),
            samples=samples,
        )
    c_rate = min(candidate_errors / candidate_requests, 1.0)
    s_rate = min(stable_errors / stable_requests, 1.0)
    limit_abs = thresholds.error_rate_max
    limit_rel = thresholds.error_rate_ratio_max * s_rate + thresholds.error_rate_floor
    limit = min(limit_abs, limit_rel)
    verdict = PASS if c_rate <= limit + 1e-12 else FAIL
    message = (
        f"{label} {_pct(c_rate)} vs {_pct(s_rate)} stable (limit {_pct(limit_abs)}, and "
        f"{thresholds.error_rate_ratio_max:g}x stable + {_pct(thresholds.error_rate_floor)}"
        f" = {_pct(limit_rel)}): {verdict}"
    )
    # The threshold stored is the limit that applied: the tighter of the two.
    return _Judge("error_rate", limit)(
        verdict, message, samples=samples, candidate=c_rate, stable=s_rate
    )


# --- cost ----------------------------------------------------------------------------------


def check_cost_per_1k(
    *,
    candidate_cost: float | None,
    candidate_requests: float | None,
    stable_cost: float | None,
    stable_requests: float | None,
    thresholds: Thresholds,
) -> CheckResult:
    """Cost per 1,000 predictions: what each revision cost over the window (currency
    units) divided by its requests, x 1,000; the ratio candidate/stable is limited."""
    limit, label = thresholds.cost_per_1k_ratio_max, LABELS["cost_per_1k"]
    result = _Judge("cost_per_1k", limit)
    figures = (candidate_cost, candidate_requests, stable_cost, stable_requests)
    if not all(_usable(v) for v in figures):
        return result(
            INCONCLUSIVE,
            f"{label}: no usable cost or request figures for both revisions: inconclusive",
        )
    samples = min(candidate_requests, stable_requests)
    if samples < thresholds.min_requests:
        return result(
            INCONCLUSIVE,
            _too_few(
                label, "requests", thresholds.min_requests, candidate_requests, stable_requests
            ),
            samples=samples,
        )
    c_cost = 1000 * candidate_cost / candidate_requests
    s_cost = 1000 * stable_cost / stable_requests
    if c_cost < 0 or s_cost < 0:
        return result(
            INCONCLUSIVE,
            f"{label}: a negative cost came back; check the cost query: inconclusive",
            samples=samples,
        )
    if s_cost == 0:
        return result(
            INCONCLUSIVE,
            f"{label}: the stable cost nothing in the window, so no ratio can be computed: "
            "inconclusive",
            samples=samples,
            candidate=c_cost,
            stable=s_cost,
        )
    ratio = c_cost / s_cost
    verdict = PASS if ratio <= limit else FAIL
    return result(
        verdict,
        f"{label} {c_cost:.4g} vs {s_cost:.4g} stable ({ratio:.2f}x, limit {limit:.2f}x): "
        f"{verdict}",
        samples=samples,
        candidate=c_cost,
        stable=s_cost,
    )


# --- prediction distribution ---------------------------------------------------------------


def check_output_psi(
    *, candidate: Histogram | None, stable: Histogram | None, thresholds: Thresholds
) -> CheckResult:
    """PSI of the candidate's prediction-score histogram against the stable's, on the same
    buckets and window (``apps.metrics.sources.drift.psi``, stable as the expected)."""
    limit, label = thresholds.psi_max, LABELS["output_psi"]
    result = _Judge("output_psi", limit)
    if candidate is None or stable is None:
        return result(
            INCONCLUSIVE,
            f"{label}: no prediction-score histogram for the "
            f"{_missing_sides(candidate, stable)}: inconclusive",
        )
    samples = min(candidate.total, stable.total)
    if samples < thresholds.min_predictions:
        need = thresholds.min_predictions
        return result(
            INCONCLUSIVE,
            _too_few(label, "scored predictions", need, candidate.total, stable.total),
            samples=samples,
        )
    if not candidate.same_bounds(stable):
        return result(
            INCONCLUSIVE,
            f"{label}: the two revisions export different score buckets, so their "
            "distributions cannot be compared; export the same buckets: inconclusive",
            samples=samples,
        )
    value = psi(stable.counts(), candidate.counts(), epsilon=thresholds.psi_epsilon)
    verdict = PASS if value <= limit else FAIL
    zone = ""
    if verdict == PASS and value > thresholds.psi_watch:
        zone = f", in the watch zone {thresholds.psi_watch:g}-{limit:g}"
    return result(
        verdict,
        f"{label} {value:.3f} against stable over {len(stable.bounds)} buckets "
        f"(limit {limit:g}{zone}): {verdict}",
        samples=samples,
        candidate=value,
        stable=0.0,  # the stable against itself
    )


def check_agreement(
    *, agreed: float | None, compared: float | None, thresholds: Thresholds
) -> CheckResult:
    """Share of mirrored requests on which candidate and stable predicted the same class
    (classifiers only): at least ``agreement_min``."""
    limit, label = thresholds.agreement_min, LABELS["agreement"]
    result = _Judge("agreement", limit)
    if not (_usable(agreed) and _usable(compared)):
        return result(INCONCLUSIVE, f"{label}: no mirrored comparisons were recorded: inconclusive")
    if agreed < 0 or agreed > compared + 0.5:
        return result(
            INCONCLUSIVE,
            f"{label}: {agreed:,.0f} agreements out of {compared:,.0f} comparisons do not add "
            "up; check the agreement query: inconclusive",
        )
    if compared < thresholds.min_comparisons:
        return result(
            INCONCLUSIVE,
            f"{label}: needs {thresholds.min_comparisons:,} mirrored requests, had "
            f"{compared:,.0f}: inconclusive",
            samples=compared,
        )
    rate = min(agreed / compared, 1.0)
    verdict = PASS if rate >= limit else FAIL
    return result(
        verdict,
        f"{label} {100 * rate:.1f}% on {compared:,.0f} mirrored requests "
        f"(limit at least {100 * limit:.1f}%): {verdict}",
        samples=compared,
        candidate=rate,
    )
