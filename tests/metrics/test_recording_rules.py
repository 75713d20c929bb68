"""deploy/prometheus/slipway-recording-rules.yml and METRICS_RECORDING_RULES, against a
real Prometheus: promtool accepts the rules, and once Prometheus has recorded them the
poll reads the same numbers from the recorded series as from the raw ones."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from apps.metrics.sources import MetricsConfigError, Target
from apps.metrics.sources.drift import DriftSource
from apps.metrics.sources.prometheus import PrometheusSource
from tests.fixtures.prometheus import need_executable
from tests.metrics.conftest import AT, EXPECTED, TIMES, UNIFORM_BASELINE, fleet_openmetrics

pytestmark = pytest.mark.slow

RULES = (
    Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "slipway-recording-rules.yml"
)
TARGETS = [
    Target("churn-model", "prod", "custom", score_baseline=UNIFORM_BASELINE),
    Target("churn-model", "staging", "custom", score_baseline=UNIFORM_BASELINE),
    Target("quiet-model", "prod", "custom"),
    Target("idle-model", "prod", "custom", score_baseline=UNIFORM_BASELINE),
]


def test_promtool_accepts_the_rules_file():
    promtool = need_executable("promtool", "prometheus")
    done = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 6 rules found" in done.stdout


@pytest.fixture(scope="module")
def recorded(prometheus_session_factory):
    """The test fleet's data plus the series the rules record over it (evaluated by
    promtool against the server every 30 s, as Prometheus would between polls)."""
    server = prometheus_session_factory(openmetrics=fleet_openmetrics())
    server.backfill_rules(RULES, start=TIMES[0], end=TIMES[-1] + 60)
    return server


def _read(settings) -> dict:
    values = {}
    for source in (PrometheusSource.from_conf(), DriftSource.from_conf()):
        try:
            for r in source.poll(TARGETS, at=AT):
                values[(r.service, r.environment, r.metric)] = r.value
        finally:
            source.close()
    return values


@pytest.fixture
def on_recorded(settings, recorded):
    settings.METRICS_BACKEND = "prometheus"
    settings.PROMETHEUS_URL = recorded.url
    settings.PROMETHEUS_TIMEOUT_SECONDS = 5
    settings.METRICS_REQUEST_WINDOW = "5m"
    settings.METRICS_DRIFT_WINDOW = "30m"
    settings.METRICS_DRIFT_MIN_COUNT = 1
    return recorded


def test_the_recorded_series_give_the_readings_the_raw_series_give(settings, on_recorded):
    settings.METRICS_RECORDING_RULES = False
    raw = _read(settings)
    settings.METRICS_RECORDING_RULES = True
    recorded = _read(settings)

    assert recorded.keys() == raw.keys()
    # Every family came through, drift included (the recorded bucket increases).
    assert {metric for _, _, metric in recorded} >= {
        "latency_p50_ms",
        "latency_p95_ms",
        "latency_p99_ms",
        "error_rate",
        "request_rate",
        "drift_psi",
    }
    for key, value in raw.items():
        assert recorded[key] == pytest.approx(value, rel=1e-6), key
    expected = EXPECTED[("churn-model", "prod")]
    assert recorded[("churn-model", "prod", "latency_p95_ms")] == pytest.approx(
        expected["latency_p95_ms"], rel=1e-9
    )
    # No traffic is still no latency, not a zero one.
    assert ("quiet-model", "prod", "latency_p95_ms") not in recorded


def test_the_recorded_series_are_what_is_asked_for(settings, on_recorded):
    settings.METRICS_RECORDING_RULES = True
    settings.METRICS_PROMQL = {}
    sent = []
    source = PrometheusSource.from_conf()
    original = source.client.query
    source.client.query = lambda promql, *, at=None: sent.append(promql) or original(promql, at=at)
    try:
        source.poll(TARGETS, at=AT)
    finally:
        source.close()
    assert sent and all("rate(" not in q and "histogram_quantile" not in q for q in sent)
    assert any("slipway_request_latency_milliseconds:quantile_rate5m" in q for q in sent)


@pytest.mark.parametrize(
    ("setting", "value"), [("METRICS_REQUEST_WINDOW", "10m"), ("METRICS_DRIFT_WINDOW", "1h")]
)
def test_windows_other_than_the_recorded_ones_are_refused_by_name(
    settings, on_recorded, setting, value
):
    settings.METRICS_RECORDING_RULES = True
    setattr(settings, setting, value)
    source = (
        PrometheusSource.from_conf()
        if setting == "METRICS_REQUEST_WINDOW"
        else DriftSource.from_conf()
    )
    try:
        with pytest.raises(MetricsConfigError) as caught:
            source.poll(TARGETS, at=AT)
    finally:
        source.close()
    assert f"{setting}={value!r}" in str(caught.value)
    assert "slipway-recording-rules.yml" in str(caught.value)
    assert source.client.requests_sent == 0  # refused before asking Prometheus
