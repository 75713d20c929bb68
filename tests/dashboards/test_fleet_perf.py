"""The fleet page at scale: its reads stay a fixed handful of queries, and narrow ones,
however many services and environments there are (issue #18: 1,000 services in 5
environments; bench.dashboard_render measures the time)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from apps.metrics import selectors
from apps.metrics.models import MetricLatest, SloState
from apps.releases.models import Release, ReleaseState
from tests import factories

pytestmark = pytest.mark.django_db


def _grow(count: int, *, staging, alice, start: int = 0) -> None:
    """``count`` more services live in staging, each with every fleet read populated:
    latest metrics, SLO states (one in breach), a release waiting and a failed one."""
    now = timezone.now()
    for i in range(start, start + count):
        service = factories.make_service(f"svc-{i:03d}", slo_p95_latency_ms=200)
        live = factories.live_release(service, staging, 1, requester=alice)
        MetricLatest.objects.bulk_create(
            MetricLatest(
                service=service,
                environment=staging,
                release=live,
                metric=metric,
                time=now,
                value=1.0 + i,
            )
            for metric in ("latency_p95_ms", "error_rate", "cost_per_day")
        )
        SloState.objects.create(
            service=service,
            environment=staging,
            metric="latency_p95_ms",
            release=live,
            last_evaluated_at=now,
            in_breach=i % 2 == 0,
        )
        waiting = factories.draft_release(service, staging, 2, requester=alice)
        failed = factories.draft_release(service, staging, 3, requester=alice)
        Release.objects.filter(pk=waiting.pk).update(state=ReleaseState.PENDING_APPROVAL)
        Release.objects.filter(pk=failed.pk).update(state=ReleaseState.FAILED)


def _page_queries(client) -> tuple[int, str]:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(reverse("dashboards:fleet"))
    assert response.status_code == 200
    return len(ctx), response.content.decode()


@pytest.mark.parametrize("person", ["pat", "otto"])  # otto also gets rollback offers
def test_fleet_page_queries_do_not_grow_with_the_fleet(people, environments, staging, person):
    client = Client()
    client.force_login(people[person])
    _grow(2, staging=staging, alice=people["alice"])
    client.get(reverse("dashboards:fleet"))  # session and caches warm
    few, _ = _page_queries(client)
    _grow(12, staging=staging, alice=people["alice"], start=2)
    many, large_page = _page_queries(client)
    if person == "otto":
        # Rollback offers cost queries per breaching row, for at most ROLLBACK_OFFERS rows.
        from apps.dashboards.fleet import ROLLBACK_OFFERS

        _grow(2 * ROLLBACK_OFFERS, staging=staging, alice=people["alice"], start=14)
        capped, _ = _page_queries(client)
        _grow(10, staging=staging, alice=people["alice"], start=14 + 2 * ROLLBACK_OFFERS)
        assert _page_queries(client)[0] == capped
        return
    assert many == few
    # Every service in both environments, each read reaching its row.
    assert large_page.count("<strong>svc-") == 14 * len(environments)
    assert large_page.count("1 waiting") == 14
    # SLO state in words on the numbers: some breaching, some within.
    assert "metric-breach" in large_page and "✓ ok" in large_page


def test_fleet_state_is_nine_narrow_queries(people, environments, staging):
    _grow(3, staging=staging, alice=people["alice"])
    with CaptureQueriesContext(connection) as ctx:
        state = selectors.fleet_state()
    assert len(ctx) == 9  # eight reads of the page's state, one of the breaches in force
    key = (state.services[0].pk, staging.pk)
    assert state.waiting[key] == 1
    assert state.latest[key].state == ReleaseState.FAILED
    assert state.live[key].model_version.version == 1
    assert state.slo[key] == {"latency_p95_ms": "breach", "error_rate": "unknown"}
    # Whole release and target rows (rendered manifests, configuration, status
    # messages) stay in the database: a fleet's worth of them dwarfs the page.
    assert {"rendered_files", "config"} <= state.live[key].get_deferred_fields()
    assert "status_message" in next(iter(state.targets.values())).get_deferred_fields()
