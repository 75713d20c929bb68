"""A poll's database queries do not grow with the fleet, also when every service breaches
at once (SLO states, events and their audit rows are written in batches)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.audit.models import AuditEvent
from apps.audit.selectors import audit_chain_verify
from apps.metrics.catalog import Metric
from apps.metrics.models import MetricLatest, MetricSample, SloEvent, SloState
from apps.metrics.services import metrics_poll
from apps.metrics.sources import Reading
from apps.registry.models import ModelVersion
from apps.releases.models import Release, ReleaseState, Service, ServiceEnvironment
from tests import factories

pytestmark = pytest.mark.django_db

AT = datetime(2024, 5, 1, 12, tzinfo=UTC)
POLL = timedelta(seconds=30)


class FixedSource:
    """A metric source that reads the same latency and error rate for every target:
    the real poll, judge and writers run on it; only Prometheus is left out."""

    name = "fixed"

    def __init__(self, *, p95_ms: float):
        self.p95_ms = p95_ms
        self.requests_sent = 0

    def poll(self, targets, *, at):
        readings = []
        for t in targets:
            readings.append(
                Reading(t.service, t.environment, Metric.LATENCY_P95_MS, self.p95_ms, at)
            )
            readings.append(Reading(t.service, t.environment, Metric.ERROR_RATE, 0.001, at))
        return readings

    def close(self):
        pass


def _grow_fleet(envs, first: int, last: int) -> None:
    """Services first..last-1 live in prod, inserted in bulk (the poll only reads them)."""
    prod = envs["prod"]
    services = Service.objects.bulk_create(
        Service(
            name=f"svc-{i:04d}",
            owner_team=factories.make_team("scale"),
            registered_model=f"svc-{i:04d}",
            runtime="custom",
            slo_p95_latency_ms=250.0,
            slo_error_rate=0.01,
        )
        for i in range(first, last)
    )
    versions = ModelVersion.objects.bulk_create(
        ModelVersion(name=f"svc-{i:04d}", version=1) for i in range(first, last)
    )
    ServiceEnvironment.objects.bulk_create(
        ServiceEnvironment(service=s, environment=prod) for s in services
    )
    Release.objects.bulk_create(
        Release(
            uid=uuid.uuid4(),
            service=s,
            environment=prod,
            model_version=v,
            config={},
            rendered_files={},
            digest="0" * 64,
            state=ReleaseState.LIVE,
            live_at=AT - timedelta(days=1),
            requested_by_system="test",
        )
        for s, v in zip(services, versions, strict=True)
    )


def _queries(**poll) -> tuple[int, object]:
    with CaptureQueriesContext(connection) as captured:
        result = metrics_poll(**poll)
    return len(captured.captured_queries), result


def test_queries_per_poll_do_not_grow_from_10_to_100_services(envs):
    source = FixedSource(p95_ms=100.0)
    _grow_fleet(envs, 0, 10)
    metrics_poll(now=AT, sources=[source])  # creates the SLO states
    small, result = _queries(now=AT + POLL, sources=[source])
    assert result.samples_written == 20

    _grow_fleet(envs, 10, 100)
    metrics_poll(now=AT + 2 * POLL, sources=[source])
    large, result = _queries(now=AT + 3 * POLL, sources=[source])
    assert result.samples_written == 200

    if connection.vendor == "postgresql":  # SQLite's writes split at its parameter limit
        # Targets (2), health, SLO states, the audit lock; samples and latest values
        # staged once (a temporary table and its COPY) and written in two statements;
        # SLO states staged and upserted the same way: 15, for 10 services as for 100.
        assert large == small == 15
    # What was written is all there: every sample, one latest value per series.
    assert MetricSample.objects.filter(time=AT + 3 * POLL).count() == 200
    assert MetricLatest.objects.count() == 200
    assert set(MetricLatest.objects.values_list("time", flat=True)) == {AT + 3 * POLL}
    # Two SLOs each: the first ten services judged good four times, the others twice.
    assert SloState.objects.filter(consecutive_good=4).count() == 20
    assert SloState.objects.filter(consecutive_good=2).count() == 180


def _all_breach(envs, services: int, settings) -> tuple[int, object]:
    settings.METRICS_SLO_BREACH_POLLS = 3
    _grow_fleet(envs, 0, services)
    slow = FixedSource(p95_ms=900.0)  # every service over its 250 ms SLO
    metrics_poll(now=AT, sources=[slow])
    metrics_poll(now=AT + POLL, sources=[slow])
    return _queries(now=AT + 2 * POLL, sources=[slow])


@pytest.mark.parametrize("services", [10, 100])
def test_a_poll_in_which_every_service_breaches_costs_constant_queries(envs, settings, services):
    queries, result = _all_breach(envs, services, settings)

    assert len(result.events) == services
    # The events' releases (one query); lock + chain head + one INSERT of audit rows; one
    # INSERT of events; who is on call and the team channels the breach notifications go
    # to (none here: nothing written); the rest as in any poll: the same number for 10
    # services as for 100.
    if connection.vendor == "postgresql":  # SQLite's writes split at its parameter limit
        assert queries == 21
    events = SloEvent.objects.filter(kind="breach", metric=Metric.LATENCY_P95_MS)
    assert events.count() == services
    assert set(events.values_list("time", flat=True)) == {AT + 2 * POLL}
    assert SloState.objects.filter(in_breach=True).count() == services
    audit = list(AuditEvent.objects.filter(action="slo.breach").order_by("id"))
    assert len(audit) == services
    assert {a.target_id for a in audit} == {str(e.release_id) for e in events}
    assert audit[0].after["metric"] == Metric.LATENCY_P95_MS
    assert audit[0].after["threshold"] == 250.0
    _checked, broken = audit_chain_verify()
    assert broken is None
