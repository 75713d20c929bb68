"""``target_slo``: a dashboard's breaches and SLO statuses in one query, the same as the
fleet-wide ``breaches_by_target`` and ``slo_status_by_target`` say for that target."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.metrics import selectors
from apps.metrics.models import SloState
from apps.releases.models import ServiceEnvironment
from tests import factories

pytestmark = pytest.mark.django_db


def _state(service, staging, metric, *, evaluated, in_breach=False):
    return SloState.objects.create(
        service=service,
        environment=staging,
        metric=metric,
        last_evaluated_at=evaluated,
        in_breach=in_breach,
        streak_since=evaluated,
        breach_started_at=evaluated - timedelta(minutes=3) if in_breach else None,
        last_value=900.0 if in_breach else 10.0,
        threshold=250.0,
    )


@pytest.mark.parametrize(
    "case",
    ["breach", "ok", "stale", "never judged", "no state", "no SLO", "override"],
)
def test_one_query_says_what_the_fleet_reads_say(people, environments, staging, case):
    now = timezone.now()
    service = factories.make_service("churn", slo_cost_per_day=None, slo_drift_psi=None)
    factories.live_release(service, staging, 1, requester=people["alice"])
    target = ServiceEnvironment.objects.get(service=service, environment=staging)
    if case == "breach":
        _state(service, staging, "latency_p95_ms", evaluated=now, in_breach=True)
        _state(service, staging, "error_rate", evaluated=now)
    elif case == "ok":
        _state(service, staging, "latency_p95_ms", evaluated=now)
    elif case == "stale":
        _state(service, staging, "latency_p95_ms", evaluated=now - timedelta(days=1))
    elif case == "never judged":
        _state(service, staging, "latency_p95_ms", evaluated=None)
    elif case == "no SLO":
        service.slo_error_rate = None
        service.save()
        _state(service, staging, "error_rate", evaluated=now)
    elif case == "override":  # the environment sets an SLO the service does not
        target.slo_drift_psi = 0.2
        target.save()
        _state(service, staging, "drift_psi", evaluated=now, in_breach=True)
    target.refresh_from_db()
    key = (service.pk, staging.pk)
    thresholds = target.slo()
    with CaptureQueriesContext(connection) as ctx:
        breaches, statuses = selectors.target_slo(
            service=service, environment=staging, thresholds=thresholds, now=now
        )
    assert len(ctx) == 1
    assert breaches == selectors.breaches_by_target(targets=[key]).get(key, {})
    assert statuses == selectors.slo_status_by_target(now=now, targets=[key]).get(key, {})
    assert statuses  # every case judges something
    if case in ("breach", "override"):
        assert "breach" in statuses.values() and breaches
