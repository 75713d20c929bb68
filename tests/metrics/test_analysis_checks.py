"""The analysis checks as pure functions: boundaries, too few samples, zero traffic,
NaN and inf from Prometheus, missing series."""

from __future__ import annotations

import math

import pytest

from apps.metrics.analysis import (
    Histogram,
    Thresholds,
    check_agreement,
    check_cost_per_1k,
    check_error_rate,
    check_latency_p95,
    check_output_psi,
    histogram_quantile,
)

INF = math.inf
NAN = math.nan
T = Thresholds()


def hist(per_bucket: dict[float, float]) -> Histogram:
    """A histogram from per-bucket (not cumulative) counts; +Inf gets what is given."""
    running, buckets = 0.0, {}
    for bound in sorted(per_bucket):
        running += per_bucket[bound]
        buckets[bound] = running
    if INF not in buckets:
        buckets[INF] = running
    return Histogram.from_buckets(buckets)


def with_p95(p95_ms: float, total: int = 1000) -> Histogram:
    """All observations in (0, 2 * p95 / 1.9]: histogram_quantile puts the p95 at p95_ms."""
    return Histogram.from_buckets({p95_ms / 0.95: total, INF: total})


# --- histogram_quantile: the PromQL rules ---------------------------------------------------


def test_quantile_interpolates_inside_its_bucket_like_promql():
    h = hist({50: 40, 100: 20, 250: 30, 500: 8, 1000: 2})
    assert histogram_quantile(0.95, h) == pytest.approx(250 + 250 * 5 / 8)
    assert histogram_quantile(0.5, h) == pytest.approx(50 + 50 * 10 / 20)


def test_quantile_in_the_inf_bucket_is_the_highest_finite_bound():
    h = hist({100: 10, INF: 90})
    assert histogram_quantile(0.95, h) == 100


def test_quantile_in_a_first_bucket_at_or_below_zero_is_that_bound():
    h = hist({0: 100, 10: 0})
    assert histogram_quantile(0.5, h) == 0


def test_quantile_of_nothing_and_out_of_range_q():
    assert math.isnan(histogram_quantile(0.95, hist({100: 0})))
    assert math.isnan(histogram_quantile(0.95, None))
    assert math.isnan(histogram_quantile(0.95, Histogram.from_buckets({INF: 10})))
    h = hist({100: 10})
    assert histogram_quantile(-0.1, h) == -INF
    assert histogram_quantile(1.1, h) == INF
    assert math.isnan(histogram_quantile(NAN, h))


def test_histogram_from_prometheus_buckets_rejects_what_it_cannot_read():
    assert Histogram.from_buckets({}) is None
    assert Histogram.from_buckets({0.1: 5, 0.2: 10}) is None  # no +Inf bucket
    assert Histogram.from_buckets({0.1: NAN, INF: 10}) is None
    assert Histogram.from_buckets({0.1: 5, INF: INF}) is None


def test_histogram_evens_out_buckets_that_dip_from_extrapolation():
    h = Histogram.from_buckets({0.1: 10.0, 0.2: 9.999, INF: 20.0})
    assert h.cumulative == (10.0, 10.0, 20.0)
    assert h.counts() == [10.0, 0.0, 10.0]


# --- latency --------------------------------------------------------------------------------


def test_latency_message_is_the_sentence_a_reviewer_reads():
    result = check_latency_p95(candidate=with_p95(212), stable=with_p95(180), thresholds=T)
    assert result.verdict == "pass"
    assert result.message == "p95 latency 212 ms vs 180 ms stable (1.18x, limit 1.20x): pass"
    assert result.candidate == pytest.approx(212)
    assert result.stable == pytest.approx(180)
    assert result.threshold == 1.2
    assert result.samples == 1000


@pytest.mark.parametrize(
    ("candidate_ms", "verdict"), [(200, "pass"), (239, "pass"), (240, "pass"), (241, "fail")]
)
def test_latency_ratio_boundary(candidate_ms, verdict):
    result = check_latency_p95(candidate=with_p95(candidate_ms), stable=with_p95(200), thresholds=T)
    assert result.verdict == verdict, result.message


def test_latency_faster_candidate_passes():
    result = check_latency_p95(candidate=with_p95(50), stable=with_p95(200), thresholds=T)
    assert result.verdict == "pass"


@pytest.mark.parametrize(("candidate_total", "verdict"), [(199, "inconclusive"), (200, "pass")])
def test_latency_minimum_requests_per_side(candidate_total, verdict):
    result = check_latency_p95(
        candidate=with_p95(180, total=candidate_total), stable=with_p95(180), thresholds=T
    )
    assert result.verdict == verdict
    if verdict == "inconclusive":
        assert "needs 200 requests per side, candidate had 199" in result.message


def test_latency_zero_traffic_and_missing_series_are_inconclusive():
    empty = hist({100: 0})
    assert check_latency_p95(candidate=empty, stable=empty, thresholds=T).verdict == (
        "inconclusive"
    )
    result = check_latency_p95(candidate=None, stable=with_p95(180), thresholds=T)
    assert result.verdict == "inconclusive"
    assert "no latency histogram for the candidate" in result.message


def test_latency_candidate_beyond_the_highest_bucket_fails_when_even_the_bound_is_too_slow():
    stable = hist({100: 1000, 1000: 0})  # p95 95 ms
    slow = hist({100: 10, 1000: 40, INF: 950})  # p95 somewhere above 1 s
    result = check_latency_p95(candidate=slow, stable=stable, thresholds=T)
    assert result.verdict == "fail"
    assert "above" in result.message


def test_latency_candidate_beyond_the_highest_bucket_is_inconclusive_when_the_bound_is_close():
    stable = hist({100: 1000, 110: 0})  # p95 95 ms
    over = hist({100: 900, 110: 0, INF: 100})  # true p95 above 110 ms, which is 1.16x
    result = check_latency_p95(candidate=over, stable=stable, thresholds=T)
    assert result.verdict == "inconclusive"


def test_latency_stable_beyond_the_highest_bucket_is_inconclusive():
    result = check_latency_p95(
        candidate=with_p95(100), stable=hist({100: 10, INF: 990}), thresholds=T
    )
    assert result.verdict == "inconclusive"
    assert "add larger buckets" in result.message


# --- errors ---------------------------------------------------------------------------------


def errors(c_req, c_err, s_req, s_err, thresholds=T):
    return check_error_rate(
        candidate_requests=c_req,
        candidate_errors=c_err,
        stable_requests=s_req,
        stable_errors=s_err,
        thresholds=thresholds,
    )


@pytest.mark.parametrize(
    ("c_err", "s_err", "verdict"),
    [
        (10, 10, "pass"),  # 1.0% absolute: at the limit
        (11, 10, "fail"),  # 1.1% > 1% absolute, though < 1.5 x 1% + 0.5
        (5, 0, "pass"),  # 0.5%: stable at 0, the floor allows it
        (6, 0, "fail"),  # 0.6% > 1.5 x 0 + 0.5%
    ],
)
def test_error_rate_absolute_and_relative_boundaries(c_err, s_err, verdict):
    result = errors(1000, c_err, 1000, s_err)
    assert result.verdict == verdict, result.message


def test_error_rate_relative_limit_bites_below_the_absolute_one():
    result = errors(1000, 9, 1000, 2)  # 0.9% vs 0.2%: limit 1.5 x 0.2% + 0.5% = 0.8%
    assert result.verdict == "fail"
    assert result.threshold == pytest.approx(0.008)
    assert result.message == (
        "error rate 0.90% vs 0.20% stable (limit 1.00%, and 1.5x stable + 0.50% = 0.80%): fail"
    )


@pytest.mark.parametrize(
    "figures",
    [
        (None, 0, 1000, 0),  # no request series
        (1000, 0, None, None),
        (NAN, 0, 1000, 0),  # 0/0 from Prometheus
        (1000, INF, 1000, 0),
        (0, 0, 0, 0),  # zero traffic
        (1000, 1001, 1000, 0),  # more errors than requests: a wrong query
        (-5, 0, 1000, 0),
    ],
)
def test_error_rate_without_usable_counts_is_inconclusive(figures):
    assert errors(*figures).verdict == "inconclusive"


def test_error_rate_with_few_requests_is_inconclusive_even_with_many_errors():
    result = errors(37, 30, 5000, 5)
    assert result.verdict == "inconclusive"
    assert "needs 200 requests per side, candidate had 37" in result.message


# --- cost -----------------------------------------------------------------------------------


def cost(c_cost, c_req, s_cost, s_req):
    return check_cost_per_1k(
        candidate_cost=c_cost,
        candidate_requests=c_req,
        stable_cost=s_cost,
        stable_requests=s_req,
        thresholds=T,
    )


@pytest.mark.parametrize(("c_cost", "verdict"), [(1.0, "pass"), (1.25, "pass"), (1.26, "fail")])
def test_cost_per_1k_ratio_boundary(c_cost, verdict):
    result = cost(c_cost, 1000, 4.0, 4000)
    assert result.verdict == verdict
    assert result.candidate == pytest.approx(c_cost)


def test_cost_per_1k_compares_per_prediction_not_per_revision():
    # a quarter of the traffic on a quarter of the pods costs the same per prediction
    assert cost(1.0, 1000, 4.0, 4000).candidate == pytest.approx(1.0)
    assert cost(1.0, 1000, 4.0, 4000).stable == pytest.approx(1.0)


@pytest.mark.parametrize(
    "figures",
    [(None, 1000, 1, 1000), (1, 1000, NAN, 1000), (1, 100, 1, 1000), (1, 1000, 0, 1000),
     (-1, 1000, 1, 1000)],
)  # fmt: skip
def test_cost_without_usable_figures_is_inconclusive(figures):
    assert cost(*figures).verdict == "inconclusive"


# --- PSI ------------------------------------------------------------------------------------

BOUNDS = [round(0.1 * i, 1) for i in range(1, 11)]


def scores(counts):
    return hist(dict(zip(BOUNDS, counts, strict=True)))


def test_identical_distributions_have_psi_zero_and_pass():
    result = check_output_psi(candidate=scores([10] * 10), stable=scores([50] * 10), thresholds=T)
    assert result.verdict == "pass"
    assert result.candidate == pytest.approx(0.0, abs=1e-12)


def test_a_shifted_distribution_fails_with_the_psi_in_the_message():
    result = check_output_psi(
        candidate=scores([2, 2, 4, 6, 8, 10, 14, 16, 18, 20]),
        stable=scores([20] * 10),
        thresholds=T,
    )
    assert result.verdict == "fail"
    assert result.candidate > 0.2
    assert result.message.startswith(f"output PSI {result.candidate:.3f} against stable")


def test_psi_in_the_watch_zone_passes_and_says_so():
    # two buckets: 0.5/0.5 against 0.68/0.32 -> PSI ~0.132
    cand = Histogram.from_buckets({0.5: 68, INF: 100})
    stab = Histogram.from_buckets({0.5: 50, INF: 100})
    result = check_output_psi(candidate=cand, stable=stab, thresholds=T)
    assert 0.1 < result.candidate < 0.2
    assert result.verdict == "pass"
    assert "watch zone 0.1-0.2" in result.message


def test_psi_needs_the_same_buckets_and_enough_predictions():
    fine = hist({0.05: 100, 0.1: 100, 1.0: 100})
    result = check_output_psi(candidate=fine, stable=scores([30] * 10), thresholds=T)
    assert result.verdict == "inconclusive"
    assert "different score buckets" in result.message
    few = check_output_psi(candidate=scores([9] * 10), stable=scores([30] * 10), thresholds=T)
    assert few.verdict == "inconclusive"
    assert "needs 100 scored predictions per side, candidate had 90" in few.message
    assert check_output_psi(candidate=None, stable=None, thresholds=T).verdict == "inconclusive"


# --- agreement ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("agreed", "compared", "verdict"),
    [(950, 1000, "pass"), (949, 1000, "fail"), (1000, 1000, "pass"), (99, 99, "inconclusive"),
     (100, 100, "pass"), (None, None, "inconclusive"), (NAN, 100, "inconclusive"),
     (120, 100, "inconclusive"), (0, 0, "inconclusive")],
)  # fmt: skip
def test_agreement_boundaries(agreed, compared, verdict):
    result = check_agreement(agreed=agreed, compared=compared, thresholds=T)
    assert result.verdict == verdict, result.message


def test_agreement_message():
    result = check_agreement(agreed=972, compared=1000, thresholds=T)
    assert result.message == (
        "agreement 97.2% on 1,000 mirrored requests (limit at least 95.0%): pass"
    )


def test_results_store_as_json_with_nan_and_inf_as_null():
    import json

    from apps.metrics.analysis import CheckResult

    stored = CheckResult("latency_p95", "fail", INF, NAN, 1.2, 300, "p95: fail").as_dict()
    json.dumps(stored, allow_nan=False)
    assert (stored["candidate"], stored["stable"], stored["threshold"]) == (None, None, 1.2)
