"""Combining checks into one verdict, and properties that must hold for any input."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from apps.metrics.analysis import CheckResult, Histogram, Thresholds, combine
from apps.metrics.analysis.checks import check_output_psi, histogram_quantile
from apps.metrics.analysis.inputs import AnalysisInputs, RevisionInputs
from apps.metrics.analysis.verdict import analyse, run_checks
from apps.metrics.sources.drift import psi

T = Thresholds()
END = datetime(2024, 1, 1, 1, tzinfo=UTC)
START = END - timedelta(minutes=15)


def result(name, verdict, message=None):
    return CheckResult(name, verdict, 1.0, 1.0, 1.0, 500, message or f"{name}: {verdict}")


def test_pass_only_when_every_required_check_passes():
    checks = [result("latency_p95", "pass"), result("error_rate", "pass")]
    verdict = combine([*checks, result("output_psi", "pass")], thresholds=T)
    assert verdict.verdict == "pass"
    assert verdict.message.startswith("pass: ")
    assert combine(checks, thresholds=T).verdict == "inconclusive"


def test_any_fail_fails_naming_the_failing_checks_first():
    verdict = combine(
        [
            result("latency_p95", "pass"),
            result("error_rate", "inconclusive"),
            result("output_psi", "fail", "output PSI 0.49: fail"),
            result("cost_per_1k", "fail", "cost: fail"),  # not required, still a fail
        ],
        thresholds=T,
    )
    assert verdict.verdict == "fail"
    assert [c.verdict for c in verdict.checks] == ["fail", "fail", "inconclusive", "pass"]
    assert verdict.failed == ("cost_per_1k", "output_psi")
    assert verdict.message == "fail: cost: fail; output PSI 0.49: fail"


def test_inconclusive_says_what_is_missing():
    verdict = combine(
        [
            result(
                "latency_p95",
                "inconclusive",
                "p95 latency: needs 200 requests per side, candidate had 37: inconclusive",
            ),
            result("error_rate", "pass"),
        ],
        thresholds=T,
    )
    assert verdict.verdict == "inconclusive"
    assert verdict.missing == ("latency_p95", "output_psi")
    assert "candidate had 37" in verdict.message
    assert "output PSI was not measured" in verdict.message


def test_an_optional_check_that_is_inconclusive_does_not_block_a_pass():
    checks = [result(n, "pass") for n in T.required] + [result("agreement", "inconclusive")]
    assert combine(checks, thresholds=T).verdict == "pass"


def test_a_check_given_twice_is_a_caller_bug():
    with pytest.raises(ValueError):
        combine([result("error_rate", "pass"), result("error_rate", "fail")], thresholds=T)


def test_cost_and_agreement_run_only_with_data_or_when_required():
    empty = AnalysisInputs(RevisionInputs("v4"), RevisionInputs("v3"), START, END)
    names = {c.name for c in run_checks(empty, thresholds=T)}
    assert names == {"latency_p95", "error_rate", "output_psi"}
    strict = Thresholds.from_dict({"required": ["agreement", "cost_per_1k"]})
    verdict = analyse(empty, thresholds=strict)
    assert {c.name for c in verdict.checks} == {*names, "agreement", "cost_per_1k"}
    assert verdict.verdict == "inconclusive"
    json.dumps(verdict.as_dict(), allow_nan=False)


# --- properties -----------------------------------------------------------------------------

counts = st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=12)


@given(counts, counts)
def test_psi_is_never_negative(expected, actual):
    n = min(len(expected), len(actual))
    expected, actual = expected[:n], actual[:n]
    if sum(expected) == 0 or sum(actual) == 0:
        return
    assert psi(expected, actual) >= -1e-12


@given(counts, st.integers(min_value=1, max_value=50))
def test_identical_and_proportional_histograms_have_psi_zero(per_bucket, factor):
    if sum(per_bucket) == 0:
        return
    assert psi(per_bucket, per_bucket) == 0.0
    assert psi(per_bucket, [c * factor for c in per_bucket]) == pytest.approx(0.0, abs=1e-9)


def _histogram(per_bucket):
    running, buckets = 0.0, {}
    for i, count in enumerate(per_bucket):
        running += count
        buckets[0.1 * (i + 1)] = running
    buckets[math.inf] = running
    return Histogram.from_buckets(buckets)


@given(counts, st.floats(0, 1), st.floats(0, 1))
def test_quantile_is_monotone_and_inside_the_finite_bounds(per_bucket, q1, q2):
    h = _histogram(per_bucket)
    if h.total == 0:
        assert math.isnan(histogram_quantile(q1, h))
        return
    low, high = sorted((q1, q2))
    a, b = histogram_quantile(low, h), histogram_quantile(high, h)
    assert a <= b + 1e-12
    assert a >= 0 and b <= h.bounds[-2] + 1e-12


@given(counts)
def test_psi_check_on_identical_histograms_never_fails(per_bucket):
    h = _histogram(per_bucket)
    verdict = check_output_psi(candidate=h, stable=h, thresholds=T).verdict
    assert verdict == ("pass" if h.total >= T.min_predictions else "inconclusive")


maybe_number = st.one_of(
    st.none(),
    st.just(math.nan),
    st.just(math.inf),
    st.floats(min_value=0, max_value=1e6, allow_nan=False),
)
SHAPE = [40, 20, 30, 8, 2]


def _scaled(total):
    """The same shape with ``total`` observations: candidate and stable agree, so only the
    sample counts decide between pass and inconclusive."""
    return _histogram([share * total / sum(SHAPE) for share in SHAPE])


@st.composite
def revision(draw):
    """Mostly healthy figures around the minimum sample counts, sometimes missing or NaN,
    so that all three verdicts come up (the property is empty if nothing ever passes)."""
    requests = draw(st.integers(0, 3 * T.min_requests))
    predictions = draw(st.integers(0, 3 * T.min_predictions))
    broken = draw(st.sampled_from(["", "", "", "requests", "latency", "scores", "errors", "slow"]))
    latency = None if broken == "latency" else _scaled(requests)
    if broken == "slow" and latency is not None:
        latency = latency.scaled(3)
    return RevisionInputs(
        revision="r",
        latency_ms=latency,
        requests=draw(maybe_number) if broken == "requests" else float(requests),
        errors=draw(maybe_number) if broken == "errors" else 0.0,
        cost=draw(st.one_of(st.none(), st.floats(0, 10))),
        scores=None if broken == "scores" else _scaled(predictions),
    )


@settings(max_examples=400, deadline=None)
@given(revision(), revision(), maybe_number, maybe_number)
def test_the_verdict_is_never_pass_below_the_minimum_samples(candidate, stable, agreed, compared):
    inputs = AnalysisInputs(candidate, stable, START, END, agreed=agreed, compared=compared)
    verdict = analyse(inputs, thresholds=T)
    event(verdict.verdict)
    if verdict.verdict != "pass":
        return
    for side in (candidate, stable):
        assert side.requests >= T.min_requests
        assert side.latency_ms.total >= T.min_requests
        assert side.scores.total >= T.min_predictions
    for check in verdict.checks:
        if check.verdict == "pass":
            assert check.samples >= min(T.min_requests, T.min_predictions, T.min_comparisons)


def test_the_property_above_reaches_every_verdict():
    """Guards the property against a strategy that never produces a pass."""
    seen = set()

    @settings(max_examples=400, deadline=None, database=None, derandomize=True)
    @given(revision(), revision())
    def collect(candidate, stable):
        seen.add(analyse(AnalysisInputs(candidate, stable, START, END), thresholds=T).verdict)

    collect()
    assert seen == {"pass", "inconclusive", "fail"}
