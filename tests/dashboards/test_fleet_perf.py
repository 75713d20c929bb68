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

from apps.dashboards.fleet import forget_rankings
from apps.metrics import selectors
from apps.metrics.models import MetricLatest, SloState
from apps.releases.models import Release, ReleaseState, ServiceEnvironment
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
        _measured(service, staging)
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


def _measured(service, environment) -> None:
    """What the metrics poll does when it stores a target's first latest value (these
    tests write the values directly; tests/metrics/test_fleet_flag.py runs the poll)."""
    ServiceEnvironment.objects.filter(service=service, environment=environment).update(
        has_metrics=True
    )


def _page_queries(client, params=None) -> tuple[int, str]:
    """Queries of a page that ranks the fleet from the database, as the first request
    after a change does (later ones with the same version key reuse the ranking)."""
    forget_rankings()
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(reverse("dashboards:fleet"), params or {})
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
    assert many == few
    if person == "otto":
        # Rollback offers: one query for the page's breaching rows, however many.
        from apps.dashboards.fleet import ROLLBACK_OFFERS

        _grow(2 * ROLLBACK_OFFERS, staging=staging, alice=people["alice"], start=14)
        assert _page_queries(client)[0] == few
        return
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


# --- one page at a time ----------------------------------------------------------------


def _quiet(count: int, *, staging, alice, start: int = 0, team: str = "growth-ml") -> list:
    """``count`` services live in staging with healthy numbers: status "ok"."""
    now = timezone.now()
    made = []
    for i in range(start, start + count):
        service = factories.make_service(f"ok-{i:03d}", owner_team=team)
        live = factories.live_release(service, staging, 1, requester=alice)
        MetricLatest.objects.create(
            service=service,
            environment=staging,
            release=live,
            metric="latency_p95_ms",
            time=now,
            value=100.0,
        )
        _measured(service, staging)
        made.append(service)
    return made


def _breaching(name: str, *, staging, alice, team: str = "growth-ml"):
    service = factories.make_service(name, owner_team=team)
    live = factories.live_release(service, staging, 1, requester=alice)
    SloState.objects.create(
        service=service,
        environment=staging,
        metric="latency_p95_ms",
        release=live,
        last_evaluated_at=timezone.now(),
        in_breach=True,
        last_value=400,
        threshold=250,
    )
    return service


def _targets(body: str) -> list[str]:
    import re

    return re.findall(r'data-target="([^"]+)"', body)


@pytest.fixture
def small_pages(monkeypatch):
    from apps.dashboards import fleet

    monkeypatch.setattr(fleet, "PAGE_SIZE", 4)
    return 4


def test_the_fleet_is_paged_with_the_breaching_services_first(
    people, environments, staging, small_pages
):
    # Named to sort last, and created last: only its status puts it first.
    _quiet(5, staging=staging, alice=people["alice"])
    _breaching("zz-late", staging=staging, alice=people["alice"])
    client = Client()
    client.force_login(people["otto"])
    first = client.get(reverse("dashboards:fleet")).content.decode()
    rows = _targets(first)
    assert len(rows) == small_pages and rows[0] == "zz-late/staging"
    assert "Roll back to v" not in first  # one release only: nothing older to go back to
    assert "page 1 of 3" in first  # 6 services x 2 environments = 12 rows
    assert "1\u20134 of 12" in first  # rows 1 to 4, an en dash between
    assert ">1 breach</a>" in first and ">5 ok</a>" in first and ">6 empty</a>" in first
    second = client.get(reverse("dashboards:fleet") + "?page=2").content.decode()
    third = client.get(reverse("dashboards:fleet") + "?page=3").content.decode()
    everything = rows + _targets(second) + _targets(third)
    assert len(everything) == 12 and len(set(everything)) == 12
    # Worst first, then by name: the healthy ones, then the prod rows nothing runs in.
    assert everything[1:6] == [f"ok-{i:03d}/staging" for i in range(5)]
    assert 'rel="prev"' in second and 'rel="next"' in second and 'rel="next"' not in third


@pytest.mark.parametrize("asked", ["abc", "0", "-1", "99999999999"])
def test_a_page_number_typed_by_hand_shows_a_page_not_an_error(
    people, environments, staging, small_pages, asked
):
    _quiet(5, staging=staging, alice=people["alice"])
    client = Client()
    client.force_login(people["otto"])
    response = client.get(reverse("dashboards:fleet"), {"page": asked})
    assert response.status_code == 200
    assert "page 1 of 3" in response.content.decode()


def test_a_page_past_the_end_shows_the_last_page(people, environments, staging, small_pages):
    _quiet(5, staging=staging, alice=people["alice"])
    client = Client()
    client.force_login(people["otto"])
    body = client.get(reverse("dashboards:fleet"), {"page": "40"}).content.decode()
    assert "page 3 of 3" in body and len(_targets(body)) == 2


def test_the_fleet_filters_by_team_status_environment_and_search(
    people, environments, staging, small_pages
):
    alice = people["alice"]
    _quiet(3, staging=staging, alice=alice, team="growth-ml")
    _quiet(3, staging=staging, alice=alice, start=3, team="risk-ml")
    _breaching("fraud-alarm", staging=staging, alice=alice, team="risk-ml")
    client = Client()
    client.force_login(people["otto"])

    def rows(**params):
        return _targets(client.get(reverse("dashboards:fleet"), params).content.decode())

    # The team filter is the team's slug, as the select offers it (not a part of it).
    assert rows(team="risk", environment="staging") == []
    assert rows(team="risk-ml", environment="staging", sort="service") == [
        "fraud-alarm/staging",
        "ok-003/staging",
        "ok-004/staging",
        "ok-005/staging",
    ]
    assert rows(status="breach") == ["fraud-alarm/staging"]
    assert rows(q="alarm") == ["fraud-alarm/staging", "fraud-alarm/prod"]
    assert rows(q="growth", environment="prod", status="ok") == []
    body = client.get(reverse("dashboards:fleet"), {"team": "risk-ml", "page": "2"}).content
    # Sorting from page 2 keeps the filters and starts again at page 1.
    assert b'href="?team=risk-ml&amp;sort=service"' in body
    assert b'<option value="risk-ml" selected>' in body


def test_each_page_costs_the_same_queries_whatever_the_fleet(
    people, environments, staging, small_pages, django_assert_max_num_queries
):
    alice = people["alice"]
    _grow(3, staging=staging, alice=alice)
    client = Client()
    client.force_login(people["otto"])
    client.get(reverse("dashboards:fleet"))  # session and caches warm
    # Page 1: staging rows, two breaching (their rollback offers: one query); page 2:
    # prod rows, nothing deployed there.
    small_first, _ = _page_queries(client, {"page": "1"})
    small_last, _ = _page_queries(client, {"page": "2"})
    _grow(25, staging=staging, alice=alice, start=3)  # 56 rows, 14 pages, 14 breaching
    for page in ("1", "2", "9", "14"):
        forget_rankings()
        # Four breaching rows on a page of four: their offers are still one query.
        with django_assert_max_num_queries(small_first):
            response = client.get(reverse("dashboards:fleet"), {"page": page})
        assert len(_targets(response.content.decode())) == small_pages
    assert _page_queries(client, {"page": "14"})[0] == small_last
    # The next request with the same version key ranks nothing: the page's own reads.
    with CaptureQueriesContext(connection) as ctx:
        client.get(reverse("dashboards:fleet"), {"page": "14"})
    assert len(ctx) == small_last - INDEX_QUERIES


# fleet_index: environments, services, releases, targets, breaches.
INDEX_QUERIES = 5


def test_each_page_polls_its_own_rows(people, environments, staging, small_pages):
    _quiet(5, staging=staging, alice=people["alice"])
    client = Client()
    client.force_login(people["otto"])
    page = client.get(reverse("dashboards:fleet"), {"page": "2"}).content.decode()
    assert 'hx-get="/fleet/live/?page=2"' in page
    first = client.get(reverse("dashboards:fleet_live"))
    second = client.get(reverse("dashboards:fleet_live"), {"page": "2"})
    assert _targets(second.content.decode()) == _targets(page)
    assert set(_targets(first.content.decode())).isdisjoint(_targets(second.content.decode()))
    assert first["ETag"] != second["ETag"]
    again = client.get(
        reverse("dashboards:fleet_live"), {"page": "2"}, HTTP_IF_NONE_MATCH=second["ETag"]
    )
    assert again.status_code == 304


def test_fleet_state_of_many_targets_narrows_by_service_and_environment(
    people, environments, staging
):
    # The reads match the pairs' services and environments (an OR of 5,000 exact pairs
    # kept PostgreSQL busy for minutes); what is asked for is all there, in nine queries.
    _grow(2, staging=staging, alice=people["alice"])
    real = [(service.pk, staging.pk) for service in selectors.fleet_state().services]
    asked = real + [(100_000 + i, staging.pk) for i in range(150)]
    with CaptureQueriesContext(connection) as ctx:
        state = selectors.fleet_state(targets=asked)
    assert len(ctx) == 9
    assert all(key in state.live and key in state.latest for key in real)
    assert {key for key in state.slo} == set(real)
    exact = selectors.fleet_state(targets=real[:1])
    assert set(exact.live) == {real[0]}


def test_a_page_reads_its_own_targets_not_their_services_in_every_environment(
    environments, staging, prod
):
    # Two services measured in both environments; a page showing one of each's targets
    # reads those two, not the four (a page of the 50 worst is often 50 services' one
    # environment each: 250 targets read for 50 rows).
    now = timezone.now()
    first, second = factories.make_service("first"), factories.make_service("second")
    for service in (first, second):
        for environment in (staging, prod):
            MetricLatest.objects.create(
                service=service, environment=environment, metric="error_rate", time=now, value=0
            )
    asked = [(first.pk, staging.pk), (second.pk, prod.pk)]
    assert set(selectors.latest_by_target(targets=asked)) == set(asked)
