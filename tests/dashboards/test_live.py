"""Live pages: fragments that answer 304 while nothing changed and 200 as soon as
something did; the breach in words; the rollback offered from the fleet; the rollback
box's states. Through the test client against the real database."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.metrics.models import SloState
from apps.releases import services
from apps.releases.models import Release, ReleaseKind
from tests import factories


@pytest.fixture(autouse=True)
def _fresh_version_keys(settings):
    """Each request computes its version key: these tests change the state and ask again
    at once (pages share a key for a second in production)."""
    settings.LIVE_VERSION_SHARED_SECONDS = 0


def _as(user):
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def two_live(people, staging, service):
    alice = people["alice"]
    good = factories.live_release(service, staging, 1, requester=alice)
    bad = factories.live_release(service, staging, 2, requester=alice)
    good.refresh_from_db()  # superseded now
    return good, bad


def _breach(service, environment, release, *, minutes_ago=4, value=324.0):
    started = timezone.now() - timedelta(minutes=minutes_ago)
    return SloState.objects.create(
        service=service,
        environment=environment,
        metric="latency_p95_ms",
        release=release,
        threshold=250.0,
        last_value=value,
        last_evaluated_at=timezone.now(),
        consecutive_bad=3,
        streak_since=started,
        in_breach=True,
        breach_started_at=started,
    )


def _conditional(client, url):
    first = client.get(url)
    assert first.status_code == 200
    etag = first["ETag"]
    again = client.get(url, HTTP_IF_NONE_MATCH=etag)
    return first, etag, again


@pytest.mark.parametrize("route", ["fleet_live", "service_live", "service_charts"])
def test_an_unchanged_fragment_is_a_304_and_a_change_is_a_200(
    people, staging, service, two_live, route
):
    args = [] if route == "fleet_live" else ["churn-model", "staging"]
    url = reverse(f"dashboards:{route}", args=args)
    client = _as(people["otto"])
    _first, etag, again = _conditional(client, url)
    assert again.status_code == 304 and again.content == b""
    assert again["Cache-Control"] == "private, no-cache"
    # The state changes underneath (a breach starts): the same ETag now gets the new page.
    _breach(service, staging, two_live[1])
    changed = client.get(url, HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200 and changed["ETag"] != etag


def test_a_rollback_changes_the_dashboard_fragment(people, staging, service, two_live):
    good, _bad = two_live
    url = reverse("dashboards:service_live", args=["churn-model", "staging"])
    client = _as(people["otto"])
    _first, etag, _again = _conditional(client, url)
    services.release_rollback(
        actor=people["otto"], service=service, environment=staging, reason="p95", target=good
    )
    changed = client.get(url, HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200
    assert b'data-rollback-state="in_progress"' in changed.content


def test_etags_differ_per_user_and_per_query(people, two_live):
    url = reverse("dashboards:fleet_live")
    otto = _as(people["otto"]).get(url)["ETag"]
    pat = _as(people["pat"]).get(url)["ETag"]
    filtered = _as(people["otto"]).get(url + "?q=churn")["ETag"]
    assert len({otto, pat, filtered}) == 3


def test_the_fleet_says_breaching_since_and_offers_the_rollback_with_the_reason(
    people, staging, service, two_live
):
    good, bad = two_live
    _breach(service, staging, bad, minutes_ago=4)
    body = _as(people["otto"]).get(reverse("dashboards:fleet")).content.decode()
    local = timezone.localtime(timezone.now() - timedelta(minutes=4))
    assert f"breaching since {local:%H:%M} (4 min)" in body
    assert "breaching SLO 250 ms" in body  # in words next to the number, not colour alone
    assert "324 ms" in body
    assert f'data-target-id="{good.pk}"' in body and "Roll back to v1</button>" in body
    assert f'data-expected-live="{bad.pk}"' in body
    assert 'data-reason="p95 324 ms over SLO 250 ms since' in body
    # A reviewer sees the breach but no rollback button.
    reviewer = _as(people["pat"]).get(reverse("dashboards:fleet")).content.decode()
    assert "breaching since" in reviewer and "Roll back to v1" not in reviewer


def test_the_fleet_rollback_posts_one_rollback_to_the_offered_target(
    people, staging, service, two_live
):
    good, bad = two_live
    _breach(service, staging, bad)
    client = _as(people["otto"])
    response = client.post(
        reverse("dashboards:rollback", args=["churn-model", "staging"]),
        {"reason": "p95 324 ms over SLO 250 ms", "expected_live": bad.pk, "target": good.pk},
    )
    assert response.status_code == 302
    rollback = Release.objects.get(kind=ReleaseKind.ROLLBACK)
    assert rollback.rollback_target_id == good.pk
    fleet = client.get(reverse("dashboards:fleet")).content.decode()
    assert "rollback under way" in fleet and "Roll back to v1</button>" not in fleet


def test_the_dashboard_numbers_carry_their_slo_state_and_the_range_shows_the_breach(
    people, staging, service, two_live
):
    _good, bad = two_live
    _breach(service, staging, bad, minutes_ago=40)
    page = _as(people["otto"]).get(reverse("dashboards:service", args=["churn-model", "staging"]))
    body = page.content.decode()
    assert "SLO breached since" in body and "(40 min)" in body
    assert 'aria-current="true">breach<' in body  # the default range follows the breach
    charts = _as(people["otto"]).get(
        reverse("dashboards:service_charts", args=["churn-model", "staging"]) + "?range=breach"
    )
    latency = json.loads(charts.content)["charts"]["chart-latency"]
    start = latency["layout"]["xaxis"]["range"][0]
    expected = timezone.now() - timedelta(minutes=55)
    assert abs((timezone.datetime.fromisoformat(start) - expected).total_seconds()) < 60


def _box(client):
    body = client.get(
        reverse("dashboards:service_live", args=["churn-model", "staging"])
    ).content.decode()
    for state in ("in_progress", "succeeded", "failed", "superseded"):
        if f'data-rollback-state="{state}"' in body:
            return state
    return None


def test_the_rollback_box_follows_the_rollback_and_goes_when_it_no_longer_applies(
    people, staging, service, two_live
):
    good, _bad = two_live
    client = _as(people["otto"])
    assert _box(client) is None
    rollback = services.release_rollback(
        actor=people["otto"], service=service, environment=staging, reason="p95", target=good
    )
    assert _box(client) == "in_progress"
    rollback = factories.release_to_live(rollback)
    assert _box(client) == "succeeded"
    # A newer release replaces the rollback: the box no longer says what runs.
    factories.live_release(service, staging, 3, requester=people["alice"])
    assert _box(client) is None


def test_a_succeeded_rollback_box_goes_after_two_minutes(people, staging, service, two_live):
    good, _bad = two_live
    client = _as(people["otto"])
    rollback = factories.release_to_live(
        services.release_rollback(
            actor=people["otto"], service=service, environment=staging, reason="p95", target=good
        )
    )
    Release.objects.filter(pk=rollback.pk).update(
        live_at=timezone.now() - timedelta(minutes=2, seconds=5)
    )
    assert _box(client) is None


def test_a_failed_rollback_box_stays_and_says_failed(people, staging, service, two_live):
    good, _bad = two_live
    client = _as(people["otto"])
    rollback = services.release_rollback(
        actor=people["otto"], service=service, environment=staging, reason="p95", target=good
    )
    Release.objects.filter(pk=rollback.pk).update(
        state="failed", ended_at=timezone.now() - timedelta(minutes=30)
    )
    assert _box(client) == "failed"


def test_the_inbox_fragment_is_live_and_cheap(people, staging, service):
    client = _as(people["pat"])
    url = reverse("dashboards:inbox_live")
    _first, _etag, again = _conditional(client, url)
    assert again.status_code == 304


def test_a_304_costs_a_few_queries_whatever_the_fleet(people, staging, service, two_live):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = _as(people["otto"])
    url = reverse("dashboards:fleet_live")
    etag = client.get(url)["ETag"]
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url, HTTP_IF_NONE_MATCH=etag).status_code == 304
    print("\n".join(q["sql"][:160] for q in ctx.captured_queries))
    # session + user + roles, then the version key: audit head, metrics, SLO, targets,
    # services and environments, source health.
    assert len(ctx) <= 9, len(ctx)


def test_a_shared_version_key_is_reused_for_a_second_only(settings, people, two_live):
    """Within LIVE_VERSION_SHARED_SECONDS a poll reuses the key (no queries for it); after
    it, a change shows."""
    settings.LIVE_VERSION_SHARED_SECONDS = 0.5
    client = _as(people["otto"])
    url = reverse("dashboards:fleet_live")
    etag = client.get(url)["ETag"]
    _breach(two_live[1].service, two_live[1].environment, two_live[1])
    deadline = time.monotonic() + 5
    status = client.get(url, HTTP_IF_NONE_MATCH=etag).status_code
    while status == 304 and time.monotonic() < deadline:
        time.sleep(0.1)  # polling with a deadline, as a page would
        status = client.get(url, HTTP_IF_NONE_MATCH=etag).status_code
    assert status == 200
