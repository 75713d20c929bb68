"""A poll cycle against the real (backfilled) Prometheus: what is stored, and what is not
when a source is down, hung, misconfigured or answering garbage."""

from __future__ import annotations

from datetime import timedelta

import pytest

from apps.metrics import selectors
from apps.metrics.models import MetricLatest, MetricSample, SourceHealth
from apps.metrics.services import metrics_poll
from tests.metrics.conftest import AT, EXPECTED, UNIFORM_BASELINE

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


@pytest.fixture
def fleet(make_live):
    return {
        ("churn-model", "prod"): make_live("churn-model", "prod", baseline=UNIFORM_BASELINE),
        ("churn-model", "staging"): make_live("churn-model", "staging", baseline=UNIFORM_BASELINE),
        ("quiet-model", "prod"): make_live("quiet-model", "prod"),
        ("idle-model", "prod"): make_live("idle-model", "prod"),
    }


def _stored(release) -> dict[str, float]:
    return dict(MetricSample.objects.filter(release=release).values_list("metric", "value"))


def test_a_poll_stores_every_reading_with_its_release(use_prometheus, fleet):
    result = metrics_poll(now=AT)
    assert [(r.source, r.ok) for r in result.sources] == [("prometheus", True), ("drift", True)]
    for key, release in fleet.items():
        expected = EXPECTED.get(key, {})
        stored = _stored(release)
        assert stored.keys() == expected.keys(), key
        for metric, value in expected.items():
            assert stored[metric] == pytest.approx(value, rel=1e-9), (key, metric)
    assert MetricSample.objects.filter(time=AT).count() == result.samples_written == 13
    assert result.requests_sent == 6 + 2  # 3 families x 2 environments, drift x 2
    # The latest values: one row per target and metric, upserted.
    metrics_poll(now=AT + timedelta(seconds=30))
    assert MetricSample.objects.count() == 26
    assert MetricLatest.objects.count() == 13
    assert set(MetricLatest.objects.values_list("time", flat=True)) == {AT + timedelta(seconds=30)}


def test_latest_by_target_gives_the_dashboards_the_newest_values(use_prometheus, fleet):
    metrics_poll(now=AT - timedelta(seconds=30))
    metrics_poll(now=AT)
    release = fleet[("churn-model", "prod")]
    latest = selectors.latest_by_target()
    entry = latest[(release.service_id, release.environment_id)]
    assert entry["observed_at"] == AT
    assert entry["latency_p95_ms"] == pytest.approx(406.25)
    idle = fleet[("idle-model", "prod")]
    assert (idle.service_id, idle.environment_id) not in latest
    # max_age leaves out values older than that.
    assert (
        selectors.latest_by_target(max_age=timedelta(minutes=1), now=AT + timedelta(hours=1)) == {}
    )


def test_prometheus_down_stores_nothing_marks_stale_and_backs_off(
    use_prometheus, fleet, settings, closed_port
):
    settings.PROMETHEUS_URL = f"http://127.0.0.1:{closed_port}"
    start = AT
    attempted = []
    for poll in range(8):  # every 30 s
        result = metrics_poll(now=start + timedelta(seconds=30 * poll))
        attempted.append(not result.sources[0].skipped)
    assert MetricSample.objects.count() == 0  # no fake zeros
    # Tried at polls 0, 1, then 2 polls later (3), then 4 polls later (7).
    assert attempted == [True, True, False, True, False, False, False, True]
    health = SourceHealth.objects.get(source="prometheus")
    assert health.consecutive_failures == 4
    assert "Cannot reach Prometheus" in health.last_error
    assert not health.configuration_error
    stale = {s.source: s for s in selectors.stale_sources(now=start + timedelta(minutes=4))}
    assert {"prometheus", "drift"} <= stale.keys()
    assert "not answering" in stale["prometheus"].message

    # Back up: the next attempt succeeds and clears the failure streak.
    settings.PROMETHEUS_URL = use_prometheus.url
    result = metrics_poll(now=health.next_attempt_at)
    assert result.sources[0].ok
    health.refresh_from_db()
    assert (health.consecutive_failures, health.next_attempt_at) == (0, None)
    assert MetricSample.objects.count() > 0

    # Up, but nobody has polled it for ten minutes: the banner points at the workers.
    later = {
        s.source: s
        for s in selectors.stale_sources(now=health.last_success_at + timedelta(minutes=10))
    }
    assert "has not been polled recently" in later["prometheus"].message
    assert "Celery worker and beat" in later["prometheus"].message


def test_backoff_is_capped(use_prometheus, fleet, settings, closed_port):
    settings.PROMETHEUS_URL = f"http://127.0.0.1:{closed_port}"
    settings.METRICS_BACKOFF_MAX_SECONDS = 120
    SourceHealth.objects.create(source="prometheus", consecutive_failures=30)
    metrics_poll(now=AT)
    health = SourceHealth.objects.get(source="prometheus")
    assert health.next_attempt_at == AT + timedelta(seconds=120)


def test_garbage_from_prometheus_stores_nothing(use_prometheus, fleet, settings, garbage_server):
    settings.PROMETHEUS_URL = garbage_server
    result = metrics_poll(now=AT)
    assert MetricSample.objects.count() == 0
    assert "not its JSON" in result.sources[0].error
    assert SourceHealth.objects.get(source="prometheus").consecutive_failures == 1


def test_a_hung_prometheus_is_timed_out(use_prometheus, fleet, settings, silent_port):
    settings.PROMETHEUS_URL = f"http://127.0.0.1:{silent_port}"
    settings.PROMETHEUS_TIMEOUT_SECONDS = 1
    result = metrics_poll(now=AT)
    assert "did not answer within 1 s" in result.sources[0].error
    assert MetricSample.objects.count() == 0


def test_a_bad_template_fails_its_source_only_and_says_so(use_prometheus, fleet, settings):
    settings.METRICS_PROMQL = {"latency": "histogram_quantile($quantile, rate(nope[5m]"}
    result = metrics_poll(now=AT)
    by_source = {run.source: run for run in result.sources}
    assert not by_source["prometheus"].ok
    assert "METRICS_PROMQL['latency']" in by_source["prometheus"].error
    assert by_source["drift"].ok  # its own template is fine
    stored = set(MetricSample.objects.values_list("metric", flat=True))
    assert stored == {"drift_psi"}
    health = SourceHealth.objects.get(source="prometheus")
    assert health.configuration_error
    status = next(s for s in selectors.source_health(now=AT) if s.source == "prometheus")
    assert status.is_stale and "misconfigured" in status.message


def test_an_unknown_backend_is_reported_not_crashed(db, settings):
    settings.METRICS_BACKEND = "graphite"
    result = metrics_poll(now=AT)
    assert result.sources[0].source == "configuration"
    assert "METRICS_BACKEND='graphite'" in result.sources[0].error
    (status,) = selectors.source_health()
    assert status.is_stale and status.configuration_error


def test_a_source_with_nothing_live_costs_nothing(use_prometheus, db):
    result = metrics_poll(now=AT)
    assert result.targets == 0
    assert result.requests_sent == 0
    assert MetricSample.objects.count() == 0
