"""The Prometheus and drift sources against a real Prometheus with backfilled data."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from apps.metrics.sources import MetricsConfigError, SourceUnavailable, Target
from apps.metrics.sources.drift import DriftSource
from apps.metrics.sources.promapi import PrometheusClient
from apps.metrics.sources.prometheus import PrometheusSource
from tests.fixtures.prometheus import OpenMetrics
from tests.metrics.conftest import (
    AT,
    COARSE_BASELINE,
    EXPECTED,
    KSERVE_LATENCY,
    UNIFORM_BASELINE,
)

pytestmark = pytest.mark.slow

TARGETS = [
    Target("churn-model", "prod", "custom", score_baseline=UNIFORM_BASELINE),
    Target("churn-model", "staging", "custom", score_baseline=UNIFORM_BASELINE),
    Target("fraud-model", "prod", "kserve-sklearn", score_baseline=COARSE_BASELINE),
    Target("quiet-model", "prod", "custom"),
    Target("idle-model", "prod", "custom", score_baseline=UNIFORM_BASELINE),
]


def _values(readings):
    out = {}
    for r in readings:
        out.setdefault((r.service, r.environment), {})[r.metric] = r.value
    return out


@pytest.fixture
def source(use_prometheus):
    source = PrometheusSource.from_conf()
    yield source
    source.close()


def test_latency_errors_and_requests_have_the_exact_expected_values(source):
    readings = source.poll(TARGETS, at=AT)
    values = _values(readings)
    for key, expected in EXPECTED.items():
        for metric, value in expected.items():
            if metric == "drift_psi":
                continue
            assert values[key][metric] == pytest.approx(value, rel=1e-9), (key, metric)
    assert {r.time for r in readings} == {AT}
    assert {r.window_seconds for r in readings} == {300}


def test_no_traffic_and_no_data_give_no_readings_rather_than_zeros(source):
    values = _values(source.poll(TARGETS, at=AT))
    # quiet-model: counters that never moved. 0 req/s is a real measurement; its latency
    # and error rate (0/0) are not, so they are absent, not zero.
    assert values[("quiet-model", "prod")] == {"request_rate": 0.0}
    assert ("idle-model", "prod") not in values


def test_one_query_per_family_per_environment_whatever_the_number_of_services(source):
    few = [t for t in TARGETS if t.runtime == "custom"]
    many = few + [Target(f"svc-{i}", "prod", "custom") for i in range(500)]
    source.poll(few, at=AT)
    sent_for_few = source.requests_sent
    source.poll(many, at=AT)
    # 3 families (latency with its three quantiles in one query, errors, requests) x 2
    # environments, for 3 services or 503.
    assert sent_for_few == source.requests_sent == 6


def test_a_runtime_override_adds_one_query_for_its_group_only(source):
    source.poll(TARGETS, at=AT)
    # prod: default latency + kserve latency; errors and requests shared; staging: 3.
    assert source.requests_sent == 7
    values = _values(source.poll(TARGETS, at=AT))
    # The default template finds no fraud-model latency; the kserve override does.
    assert values[("fraud-model", "prod")]["latency_p95_ms"] == pytest.approx(43.75)


def test_readings_stay_with_the_services_of_their_template_group(source, settings):
    # If prod's custom services were given the kserve template, churn-model (which has
    # no kserve series) must get no latency rather than another service's.
    settings.METRICS_PROMQL_OVERRIDES = {"prod/*": {"latency": KSERVE_LATENCY}}
    values = _values(source.poll(TARGETS, at=AT))
    assert "latency_p95_ms" not in values[("churn-model", "prod")]
    assert values[("fraud-model", "prod")]["latency_p95_ms"] == pytest.approx(43.75)
    assert values[("churn-model", "staging")]["latency_p95_ms"] == pytest.approx(75.0)


def test_a_template_prometheus_refuses_is_a_configuration_error_naming_it(source, settings):
    settings.METRICS_PROMQL_OVERRIDES = {
        "prod/*": {"error_rate": "sum by (service) (rate(slipway_requests_total[5m]"}
    }
    with pytest.raises(MetricsConfigError) as caught:
        source.poll(TARGETS, at=AT)
    message = str(caught.value)
    assert "METRICS_PROMQL_OVERRIDES['prod/*']['error_rate']" in message
    assert "parse error" in message  # Prometheus's own words
    assert "bad_data" in message


def test_a_template_that_does_not_group_by_service_is_a_configuration_error(source, settings):
    settings.METRICS_PROMQL = {"request_rate": "sum(rate(slipway_requests_total[$window]))"}
    with pytest.raises(MetricsConfigError, match=r"METRICS_PROMQL\['request_rate'\].*service"):
        source.poll(TARGETS, at=AT)


def test_an_unknown_placeholder_is_caught_before_asking_prometheus(source, settings):
    settings.METRICS_PROMQL = {"request_rate": 'sum by (service) (up{namespace="$namespace"})'}
    with pytest.raises(MetricsConfigError, match=r"\$namespace"):
        source.poll(TARGETS, at=AT)
    assert source.requests_sent == 2  # latency and errors went out; requests never did


def test_a_bad_override_key_is_a_configuration_error(source, settings):
    settings.METRICS_PROMQL_OVERRIDES = {"prod": {"latency": KSERVE_LATENCY}}
    with pytest.raises(MetricsConfigError, match="'<environment>/<runtime>'"):
        source.poll(TARGETS, at=AT)


# --- Prometheus down, hung, or not Prometheus --------------------------------------------


def test_prometheus_down_is_unavailable(closed_port):
    source = PrometheusSource(PrometheusClient(f"http://127.0.0.1:{closed_port}", timeout=2))
    with pytest.raises(SourceUnavailable, match="Cannot reach Prometheus"):
        source.poll(TARGETS, at=AT)


def test_a_hung_prometheus_times_out(silent_port):
    source = PrometheusSource(PrometheusClient(f"http://127.0.0.1:{silent_port}", timeout=1))
    started = time.monotonic()
    with pytest.raises(SourceUnavailable, match="did not answer within 1 s"):
        source.poll(TARGETS, at=AT)
    assert time.monotonic() - started < 5


def _many_series(count: int) -> tuple[str, float]:
    """``count`` request counters in prod (one per service) and a time inside them."""
    om = OpenMetrics()
    start = AT.timestamp() - 60
    for i in range(count):
        labels = {"service": f"svc-{i}", "environment": "prod", "code": "200"}
        om.counter("slipway_requests", labels, [(start + 15 * k, 100 * k) for k in range(4)])
    return om.text(), start + 45


def test_a_query_that_runs_out_of_time_is_unavailable_not_a_configuration_error(
    prometheus_factory,
):
    # With 20,000 series a tiny `timeout` runs out while Prometheus expands the selector's
    # series: 422 "execution", "expanding series: context deadline exceeded". A slow
    # source, to be retried, not a template to fix.
    text, at = _many_series(20_000)
    prom = prometheus_factory(openmetrics=text)
    targets = [Target(f"svc-{i}", "prod", "custom") for i in range(3)]
    messages = []
    for timeout in (0.002, 0.005, 0.001, 0.01) * 3:
        source = PrometheusSource(PrometheusClient(prom.url, timeout=timeout))
        try:
            with pytest.raises(SourceUnavailable) as caught:
                source.poll(targets, at=datetime.fromtimestamp(at, tz=UTC))
        finally:
            source.close()
        assert not isinstance(caught.value, MetricsConfigError)
        messages.append(str(caught.value))
    # Each answer was a timeout of one kind or the other (a 503 "timeout" when the
    # deadline passed between evaluation steps); the 422 form came up at least once.
    assert all("timed out" in m or "context deadline exceeded" in m for m in messages)
    deadline = [m for m in messages if "context deadline exceeded" in m]
    assert deadline, messages
    assert "did not finish the query within its 0.0" in deadline[0]


def test_a_timeout_under_a_second_is_sent_in_a_form_prometheus_reads(use_prometheus):
    # "0.5s" is not a Prometheus duration (whole numbers only): it was refused with a 400,
    # read as a broken template. Plain seconds are read as a float.
    client = PrometheusClient(use_prometheus.url, timeout=0.5)
    samples = client.query("sum by (service) (slipway_requests_total)", at=AT)
    assert {labels["service"] for labels, _ in samples} >= {"churn-model", "fraud-model"}


def test_an_html_page_where_prometheus_should_be_is_garbage(garbage_server):
    source = PrometheusSource(PrometheusClient(garbage_server, timeout=2))
    with pytest.raises(SourceUnavailable, match=r"not its JSON \(text/html\)"):
        source.poll(TARGETS, at=AT)


# --- drift --------------------------------------------------------------------------------


def test_drift_psi_has_the_exact_expected_values(use_prometheus):
    source = DriftSource.from_conf()
    values = _values(source.poll(TARGETS, at=AT))
    assert values[("churn-model", "prod")]["drift_psi"] == pytest.approx(
        EXPECTED[("churn-model", "prod")]["drift_psi"], rel=1e-9
    )
    assert values[("churn-model", "staging")]["drift_psi"] == pytest.approx(
        EXPECTED[("churn-model", "staging")]["drift_psi"], rel=1e-9
    )
    # One query per environment, only for targets that have a baseline.
    assert source.requests_sent == 2
    assert ("fraud-model", "prod") not in values
    assert "do not include every baseline bound" in source.notes[("fraud-model", "prod")]
    assert "no baseline" in source.notes[("quiet-model", "prod")]
    assert "no live prediction scores" in source.notes[("idle-model", "prod")]
    source.close()


def test_drift_needs_enough_predictions(use_prometheus, settings):
    settings.METRICS_DRIFT_MIN_COUNT = 10**9
    source = DriftSource.from_conf()
    assert source.poll(TARGETS, at=AT) == []
    assert "fewer than" in source.notes[("churn-model", "prod")]
    source.close()
