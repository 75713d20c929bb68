"""``ServiceEnvironment.has_metrics``: the fleet ranks 5,000 targets on it instead of a
DISTINCT over their latest values, so the poll must keep it exactly: set in the
transaction that stores a target's first value of a metric the fleet shows, never for
other metrics, and no query for it on the polls after."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps as django_apps
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.metrics.catalog import FLEET_METRICS, Metric
from apps.metrics.models import MetricLatest
from apps.metrics.selectors import fleet_index
from apps.metrics.services import metrics_poll
from apps.metrics.sources import Reading
from apps.releases.models import ServiceEnvironment
from tests import factories

pytestmark = pytest.mark.django_db


class OneMetricSource:
    """Reads ``metric`` for every live target of ``services`` (all when None)."""

    name = "fixed"
    requests_sent = 0

    def __init__(self, metric: str, services=None):
        self.metric = metric
        self.services = services

    def poll(self, targets, *, at):
        return [
            Reading(t.service, t.environment, self.metric, 1.0, at)
            for t in targets
            if self.services is None or t.service in self.services
        ]

    def close(self):
        pass


@pytest.fixture
def live(people, environments, staging):
    made = []
    for name in ("alpha", "beta"):
        service = factories.make_service(name)
        factories.live_release(service, staging, 1, requester=people["alice"])
        made.append(service)
    return made


def _flags(staging) -> dict[str, bool]:
    return dict(
        ServiceEnvironment.objects.filter(environment=staging).values_list(
            "service__name", "has_metrics"
        )
    )


def _flag_updates(ctx) -> int:
    return sum(
        1
        for q in ctx.captured_queries
        if q["sql"].startswith('UPDATE "releases_serviceenvironment"')
    )


def test_the_poll_flags_a_target_with_its_first_fleet_metric(live, staging):
    assert _flags(staging) == {"alpha": False, "beta": False}
    # A metric the fleet does not show leaves the flag alone (the row stays "unknown").
    metrics_poll(now=timezone.now(), sources=[OneMetricSource(Metric.REQUEST_RATE)])
    assert MetricLatest.objects.count() == 2
    assert _flags(staging) == {"alpha": False, "beta": False}

    with CaptureQueriesContext(connection) as ctx:
        metrics_poll(now=timezone.now(), sources=[OneMetricSource(Metric.ERROR_RATE, {"alpha"})])
    assert _flags(staging) == {"alpha": True, "beta": False}
    assert _flag_updates(ctx) == 1
    # The index agrees with a count over the latest values, as the DISTINCT did.
    measured = {
        (s, e)
        for s, e in MetricLatest.objects.filter(metric__in=FLEET_METRICS).values_list(
            "service_id", "environment_id"
        )
    }
    assert fleet_index().measured == measured and len(measured) == 1

    # Flagged targets cost the poll no query.
    with CaptureQueriesContext(connection) as ctx:
        metrics_poll(now=timezone.now(), sources=[OneMetricSource(Metric.ERROR_RATE, {"alpha"})])
    assert _flag_updates(ctx) == 0


def test_the_migration_backfills_the_flag_from_the_latest_values(live, staging):
    metrics_poll(now=timezone.now(), sources=[OneMetricSource(Metric.LATENCY_P95_MS)])
    metrics_poll(now=timezone.now(), sources=[OneMetricSource(Metric.REQUEST_RATE)])
    # As before the migration: values stored, no flag; beta has only a metric not shown.
    ServiceEnvironment.objects.update(has_metrics=False)
    MetricLatest.objects.filter(service__name="beta", metric=Metric.LATENCY_P95_MS).delete()
    migration = importlib.import_module("apps.metrics.migrations.0002_backfill_target_has_metrics")
    assert set(migration.FLEET_METRICS) == set(FLEET_METRICS)
    migration.backfill(django_apps, None)
    assert _flags(staging) == {"alpha": True, "beta": False}
