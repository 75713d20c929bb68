"""SLO judgement: K consecutive bad polls make a breach, R good ones a recovery; both are
SloEvents and audit events. Readings come from the real backfilled Prometheus."""

from __future__ import annotations

from datetime import timedelta

import pytest

from apps.audit.models import AuditEvent
from apps.audit.selectors import audit_chain_verify
from apps.metrics import selectors
from apps.metrics.models import SloEvent, SloState
from apps.metrics.services import metrics_poll
from apps.metrics.sources.promapi import PrometheusClient
from apps.metrics.sources.prometheus import PrometheusSource
from apps.releases.models import Service
from tests.metrics.conftest import AT, backdate

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

POLL = timedelta(seconds=30)


@pytest.fixture
def churn_prod(make_live, use_prometheus):
    # SLOs from tests.factories: p95 250 ms and 1 % errors; prod serves 406.25 ms and 5 %.
    release = make_live("churn-model", "prod")
    return backdate(release, minutes=60, before=AT)


def _polls(count: int, *, first=AT - 2 * POLL):
    return [metrics_poll(now=first + POLL * i) for i in range(count)]


def _actions(release):
    return list(
        AuditEvent.objects.filter(target_type="release", target_id=str(release.pk))
        .filter(action__startswith="slo.")
        .order_by("id")
        .values_list("action", flat=True)
    )


def test_a_breach_counts_after_k_consecutive_bad_polls(churn_prod):
    first, second = _polls(2)
    assert first.events == second.events == []
    status = selectors.slo_status_by_target(now=AT)[
        (churn_prod.service_id, churn_prod.environment_id)
    ]
    assert status == {"latency_p95_ms": "ok", "error_rate": "ok"}  # bad, not yet a breach

    (third,) = _polls(1, first=AT)
    assert sorted((e.metric, e.kind) for e in third.events) == [
        ("error_rate", "breach"),
        ("latency_p95_ms", "breach"),
    ]
    event = SloEvent.objects.get(metric="latency_p95_ms")
    assert (event.value, event.threshold, event.polls) == (pytest.approx(406.25), 250.0, 3)
    assert event.release_id == churn_prod.pk
    assert event.started_at == AT - 2 * POLL and event.time == AT
    assert _actions(churn_prod) == ["slo.breach", "slo.breach"]
    assert audit_chain_verify()[1] is None
    status = selectors.slo_status_by_target(now=AT)[
        (churn_prod.service_id, churn_prod.environment_id)
    ]
    assert status == {"latency_p95_ms": "breach", "error_rate": "breach"}


def test_a_breach_is_recorded_once_and_recovery_after_r_good_polls(churn_prod):
    _polls(5)
    assert SloEvent.objects.filter(kind="breach").count() == 2
    Service.objects.filter(pk=churn_prod.service_id).update(
        slo_p95_latency_ms=1000, slo_error_rate=0.1
    )
    two_good = _polls(2, first=AT + 3 * POLL)
    assert [e for r in two_good for e in r.events] == []
    (third,) = _polls(1, first=AT + 5 * POLL)
    assert sorted((e.metric, e.kind) for e in third.events) == [
        ("error_rate", "recovery"),
        ("latency_p95_ms", "recovery"),
    ]
    assert _actions(churn_prod) == ["slo.breach", "slo.breach", "slo.recovery", "slo.recovery"]


def test_an_environment_override_of_the_slo_wins(churn_prod):
    from apps.releases.models import ServiceEnvironment

    ServiceEnvironment.objects.filter(
        service_id=churn_prod.service_id, environment_id=churn_prod.environment_id
    ).update(slo_p95_latency_ms=500)
    _polls(3)
    assert list(SloEvent.objects.values_list("metric", flat=True)) == ["error_rate"]


def test_a_poll_without_data_neither_grows_nor_breaks_the_streak(churn_prod, closed_port):
    down = PrometheusSource(PrometheusClient(f"http://127.0.0.1:{closed_port}", timeout=1))
    metrics_poll(now=AT - 3 * POLL)
    metrics_poll(now=AT - 2 * POLL)
    metrics_poll(now=AT - POLL, sources=[down])
    state = SloState.objects.get(metric="latency_p95_ms")
    assert (state.consecutive_bad, state.in_breach) == (2, False)
    assert metrics_poll(now=AT).events  # the third measured bad poll


def test_a_new_release_starts_its_streaks_over(churn_prod, make_live):
    _polls(2)
    newer = backdate(make_live("churn-model", "prod", version=2), minutes=30, before=AT)
    (poll,) = _polls(1, first=AT)
    assert poll.events == []
    state = SloState.objects.get(metric="latency_p95_ms")
    assert (state.release_id, state.consecutive_bad) == (newer.pk, 1)


def test_readings_that_reach_back_before_the_release_went_live_are_not_judged(churn_prod):
    backdate(churn_prod, minutes=2, before=AT)  # the 5-minute window still holds older data
    _polls(3)
    assert SloEvent.objects.count() == 0
    status = selectors.slo_status_by_target(now=AT)[
        (churn_prod.service_id, churn_prod.environment_id)
    ]
    assert status == {"latency_p95_ms": "unknown", "error_rate": "unknown"}


def test_status_turns_unknown_when_judgements_get_old(churn_prod):
    _polls(3)
    later = AT + timedelta(minutes=10)
    status = selectors.slo_status_by_target(now=later)[
        (churn_prod.service_id, churn_prod.environment_id)
    ]
    # Still in breach (nothing said otherwise); an ok judgement would go unknown.
    assert status == {"latency_p95_ms": "breach", "error_rate": "breach"}
    SloState.objects.update(in_breach=False)
    status = selectors.slo_status_by_target(now=later)[
        (churn_prod.service_id, churn_prod.environment_id)
    ]
    assert status == {"latency_p95_ms": "unknown", "error_rate": "unknown"}


def test_slo_status_takes_two_queries_whatever_the_fleet(
    churn_prod, make_live, django_assert_num_queries
):
    _polls(1)
    with django_assert_num_queries(2):
        small = selectors.slo_status_by_target(now=AT)
    for i in range(20):
        make_live(f"svc-{i}", "staging")
    with django_assert_num_queries(2):
        large = selectors.slo_status_by_target(now=AT)
    assert len(small) == 1 and len(large) == 21
