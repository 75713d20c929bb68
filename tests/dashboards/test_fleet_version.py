"""The fleet's ranking is kept per process while the fleet's version key holds
(apps/dashboards/fleet.py): whatever may reorder or alter the page must change the key.
Each case warms the ranking, makes one change through the code that makes it in
production, and expects the key to move and the page to show the change."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.dashboards.versions import fleet_version
from apps.metrics.catalog import Metric
from apps.metrics.services import metrics_poll
from apps.metrics.sources import Reading
from apps.releases import services
from apps.releases.models import Environment, ServiceEnvironment
from tests import factories

pytestmark = pytest.mark.django_db


class LatencySource:
    """Reads a p95 latency for every live target (``p95`` by service name, else 100 ms)
    and nothing for the services in ``silent``: the real poll, SLO judge and writers run
    on it; only Prometheus is left out."""

    name = "fixed"
    requests_sent = 0

    def __init__(self, p95: dict[str, float] | None = None, silent=()):
        self.p95 = p95 or {}
        self.silent = set(silent)

    def poll(self, targets, *, at):
        return [
            Reading(
                t.service, t.environment, Metric.LATENCY_P95_MS, self.p95.get(t.service, 100.0), at
            )
            for t in targets
            if t.service not in self.silent
        ]

    def close(self):
        pass


def _poll(**source) -> None:
    metrics_poll(now=timezone.now(), sources=[LatencySource(**source)])


@pytest.fixture
def fleet(people, environments, staging, settings):
    """svc-0 (v1 then v2), svc-1, svc-2 and quiet live in staging, measured within their
    SLO but quiet (no metrics yet: "unknown")."""
    settings.METRICS_SLO_BREACH_POLLS = 1
    alice = people["alice"]
    made = {}
    for name in ("svc-0", "svc-1", "svc-2", "quiet"):
        made[name] = factories.make_service(name)
        factories.live_release(made[name], staging, 1, requester=alice)
    factories.live_release(made["svc-0"], staging, 2, requester=alice)
    _poll(silent={"quiet"})
    return made


def _page(client, **params) -> tuple[list[str], dict[str, int]]:
    """The page's rows (service/environment) in order, and its count per status."""
    body = client.get(reverse("dashboards:fleet"), params).content.decode()
    counts = {status: int(count) for count, status in re.findall(r">(\d+) (\w+)</a>", body)}
    return re.findall(r'data-target="([^"]+)"', body), counts


def _live(service, environment):
    return service.releases.get(environment=environment, state="live")


def _breach(fleet, staging, people):
    _poll(p95={"svc-2": 900.0}, silent={"quiet"})
    return {}, lambda rows, counts: rows[0] == "svc-2/staging" and counts["breach"] == 1


def _first_metrics(fleet, staging, people):
    _poll()  # quiet's first values: has_metrics set by the poll
    return {}, lambda rows, counts: "unknown" not in counts and counts["ok"] == 4


def _failed(fleet, staging, people):
    release = factories.approved_release(fleet["svc-1"], staging, 3, requester=people["alice"])
    services.release_deploy_claim(release=release)
    services.release_mark_failed(release=release, message="image pull failed")
    return {}, lambda rows, counts: rows[0] == "svc-1/staging" and counts["failed"] == 1


def _degraded(fleet, staging, people):
    target = ServiceEnvironment.objects.get(service=fleet["svc-2"], environment=staging)
    services.target_record_status(
        target=target, sync_status="Synced", health_status="Degraded", revision="a" * 40, message=""
    )
    return {}, lambda rows, counts: rows[0] == "svc-2/staging" and counts["degraded"] == 1


def _drift(fleet, staging, people):
    target = ServiceEnvironment.objects.get(service=fleet["svc-1"], environment=staging)
    services.target_record_drift(
        target=target,
        live=_live(fleet["svc-1"], staging),
        revision="b" * 40,
        differences={"changed": ["deployment.yaml"], "added": [], "removed": []},
    )
    return {}, lambda rows, counts: rows[0] == "svc-1/staging" and counts["unapproved"] == 1


def _rollback(fleet, staging, people):
    services.release_rollback(
        actor=people["otto"], service=fleet["svc-0"], environment=staging, reason="bad v2"
    )
    return {}, lambda rows, counts: rows[0] == "svc-0/staging" and counts["moving"] == 1


def _new_service(fleet, staging, people):
    factories.make_service("aaa-new")  # no release, no audit row: rows "empty"
    return {"sort": "service"}, lambda rows, counts: rows[0] == "aaa-new/staging"


def _new_environment(fleet, staging, people):
    Environment.objects.create(name="canary", order=0)
    return {"sort": "environment"}, lambda rows, counts: rows[0] == "quiet/canary"


def _value_moves(fleet, staging, people):
    _poll(p95={"svc-1": 240.0}, silent={"quiet"})  # highest, still within the SLO
    return {"sort": "p95"}, lambda rows, counts: rows[0] == "svc-1/staging"


def _waiting(fleet, staging, people):
    source = factories.backdate_live(_live(fleet["svc-2"], staging))
    services.release_promote(actor=people["alice"], source=source)
    return {"sort": "waiting"}, lambda rows, counts: rows[0] == "svc-2/prod"


CHANGES = [
    _breach,
    _first_metrics,
    _failed,
    _degraded,
    _drift,
    _rollback,
    _new_service,
    _new_environment,
    _value_moves,
    _waiting,
]


@pytest.mark.parametrize("change", CHANGES, ids=[c.__name__.strip("_") for c in CHANGES])
def test_every_change_that_moves_a_row_moves_the_key(fleet, staging, people, change):
    client = Client()
    client.force_login(people["otto"])
    # Warm every sort this test reads, under the current key.
    for sort in ("status", "service", "environment", "p95", "waiting"):
        _page(client, sort=sort)
    key = fleet_version()
    params, shows = change(fleet, staging, people)
    assert fleet_version() != key
    rows, counts = _page(client, **params)
    assert shows(rows, counts), (rows, counts)
