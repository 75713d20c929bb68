"""Outside a caller's transaction, on PostgreSQL, a poll writes its observations (samples
and latest values) on a connection of its own while the judgement (SLO states, events,
audit rows) is written on the poll's: both land, each all or nothing, and a failed
observation write loses no judgement and is reported."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection

from apps.audit.models import AuditEvent
from apps.audit.selectors import audit_chain_verify
from apps.metrics.models import MetricLatest, MetricSample, SloEvent, SloState, SourceHealth
from apps.metrics.services import metrics_poll
from apps.releases.models import ServiceEnvironment
from tests.metrics.test_poll_scale import AT, POLL, FixedSource, _grow_fleet

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="one connection on SQLite (the demo)"
    ),
]


def test_observations_and_judgement_both_land_from_their_own_connections(envs, settings):
    settings.METRICS_SLO_BREACH_POLLS = 2
    _grow_fleet(envs, 0, 20)
    slow = FixedSource(p95_ms=900.0)  # every service over its 250 ms SLO

    first = metrics_poll(now=AT, sources=[slow])
    second = metrics_poll(now=AT + POLL, sources=[slow])

    assert first.observations_apart and second.observations_apart
    assert second.samples_written == 40
    assert MetricSample.objects.count() == 80
    assert MetricLatest.objects.count() == 40
    assert set(MetricLatest.objects.values_list("time", flat=True)) == {AT + POLL}
    # The fleet flag travels with the observations.
    assert ServiceEnvironment.objects.filter(has_metrics=True).count() == 20
    # The judgement: every service breached on its second bad poll, audited and chained.
    assert len(second.events) == 20
    assert SloState.objects.filter(in_breach=True).count() == 20
    assert SloEvent.objects.filter(kind="breach").count() == 20
    assert AuditEvent.objects.filter(action="slo.breach").count() == 20
    assert audit_chain_verify()[1] is None


@pytest.fixture
def failing_samples():
    """A real database failure on the observations' side: a trigger that refuses every
    new sample (as a full disk or a revoked grant would)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION refuse_sample() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'samples refused by test trigger'; END $$"
        )
        cursor.execute(
            "CREATE TRIGGER refuse_sample BEFORE INSERT ON metrics_metricsample "
            "FOR EACH ROW EXECUTE FUNCTION refuse_sample()"
        )
    yield
    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER IF EXISTS refuse_sample ON metrics_metricsample")
        cursor.execute("DROP FUNCTION IF EXISTS refuse_sample()")


def test_a_failed_observation_write_keeps_the_judgement_and_is_reported(
    envs, settings, failing_samples
):
    settings.METRICS_SLO_BREACH_POLLS = 1
    _grow_fleet(envs, 0, 5)
    slow = FixedSource(p95_ms=900.0)

    with pytest.raises(DatabaseError, match="samples refused by test trigger"):
        metrics_poll(now=AT, sources=[slow])

    # Nothing half-written on the observations' side: no sample, no latest value.
    assert MetricSample.objects.count() == 0
    assert MetricLatest.objects.count() == 0
    # The judgement committed: states, the breach events, their audit rows, the health.
    assert SloState.objects.filter(in_breach=True).count() == 5
    assert SloEvent.objects.filter(kind="breach").count() == 5
    assert AuditEvent.objects.filter(action="slo.breach").count() == 5
    assert SourceHealth.objects.get(source="fixed").last_success_at == AT

    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER refuse_sample ON metrics_metricsample")
    result = metrics_poll(now=AT + POLL, sources=[slow])
    assert result.samples_written == 10
    assert MetricLatest.objects.count() == 10
    # Still in breach: no second breach event for the same streak.
    assert SloEvent.objects.filter(kind="breach").count() == 5
