"""What a service dashboard reads: a fixed, small number of queries however long the
target's history (issue #18: the 24 h page's cost is mostly the reads around the charts),
and the shortcuts taken for it give what the full reads give."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from apps.dashboards.charts import release_markers
from apps.dashboards.views import HISTORY_ROWS
from apps.releases.models import Release
from tests import factories

pytestmark = pytest.mark.django_db

# session, user; target (with service and environment); SLO states; latest values;
# history; source health; who may roll back (2); rollback candidates; markers (only
# for a history longer than the table); breach windows (2: the events in the range, and
# the breaches already open at its start); chart series; the navigation's audit
# permission (2).
DASHBOARD_QUERIES = 15


def _queries(client, url) -> int:
    client.get(url)  # session warm
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx)


def _releases(service, staging, alice, count: int, start: int = 1) -> None:
    for version in range(start, start + count):
        factories.live_release(service, staging, version, requester=alice)


@pytest.mark.parametrize("range_key", ["1h", "24h", "7d"])
def test_the_dashboard_reads_a_fixed_handful(people, staging, service, range_key):
    client = Client()
    client.force_login(people["otto"])
    url = reverse("dashboards:service", args=[service.name, staging.name]) + f"?range={range_key}"
    _releases(service, staging, people["alice"], 3)
    assert _queries(client, url) == DASHBOARD_QUERIES
    # A history longer than its table: the markers are read on their own.
    _releases(service, staging, people["alice"], HISTORY_ROWS, start=4)
    assert _queries(client, url) == DASHBOARD_QUERIES + 1


def test_markers_found_in_the_history_are_the_markers_read(people, staging, service):
    _releases(service, staging, people["alice"], 4)
    now = timezone.now()
    releases = list(Release.objects.filter(service=service, environment=staging))
    # One before the range, two in it (one at its very edge), one not live yet.
    times = [now - timedelta(hours=30), now - timedelta(hours=24), now - timedelta(hours=2)]
    for release, live_at in zip(releases, times, strict=False):
        Release.objects.filter(pk=release.pk).update(live_at=live_at)
    Release.objects.filter(pk=releases[3].pk).update(live_at=None)
    history = list(Release.objects.filter(service=service, environment=staging))
    start = now - timedelta(hours=24)
    read = release_markers(service=service, environment=staging, start=start, end=now)
    found = release_markers(
        service=service, environment=staging, start=start, end=now, releases=history
    )
    assert [r.pk for r in found] == [r.pk for r in read] == [releases[1].pk, releases[2].pk]
