"""/metrics: Slipway's own metrics in the Prometheus text format.

The body is parsed with prometheus_client's own parser (what Prometheus accepts), the
families are all there, request counts and latencies move with requests (named views,
404s, 500s), and the state gauges follow the database: releases by state, approvals
pending, the deploy queue, the registry sync's age, metric sources' staleness.
"""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from controlplane import prometheus
from tests import factories

URLS = "tests.controlplane.urls_minimal"
P = prometheus.PREFIX
FAMILIES = {
    f"{P}_http_requests",
    f"{P}_http_request_duration_seconds",
    f"{P}_releases",
    f"{P}_approvals_pending",
    f"{P}_deploy_queue_depth",
    f"{P}_deploy_queue_oldest_age_seconds",
    f"{P}_registry_last_sync_age_seconds",
    f"{P}_registry_sync_stale",
    f"{P}_metrics_source_stale",
    f"{P}_metrics_source_last_success_age_seconds",
    f"{P}_metrics_source_consecutive_failures",
    f"{P}_notification_deliveries",
    f"{P}_state_collect_ok",
}


@pytest.fixture
def metrics_settings(settings):
    settings.ROOT_URLCONF = URLS
    settings.METRICS_TOKEN = ""
    settings.METRICS_PUBLIC = True
    return settings


def scrape(client: Client | None = None, **headers) -> dict[str, dict[tuple, float]]:
    """{sample name: {sorted label items: value}} from one /metrics response."""
    response = (client or Client()).get("/metrics", **headers)
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def families() -> set[str]:
    text = Client().get("/metrics").content.decode()
    return {family.name for family in text_string_to_metric_families(text)}


def value(samples, name: str, **labels) -> float:
    return samples.get(name, {}).get(tuple(sorted(labels.items())), 0.0)


@pytest.mark.django_db
def test_metrics_parse_and_every_family_is_there(metrics_settings):
    factories.make_environments()
    Client().get("/healthz")
    assert families() >= FAMILIES


@pytest.mark.django_db
def test_request_counts_and_latencies_move_with_requests(metrics_settings):
    client = Client(raise_request_exception=False)
    before = scrape(client)
    for pk in (1, 2, 3):
        assert client.get(f"/sample/{pk}").status_code == 200
    assert client.get("/no/such/page").status_code == 404
    assert client.get("/static/js/dashboards.js").status_code == 200  # whitenoise
    assert client.get("/broken").status_code == 500
    assert client.post("/sample/1").status_code == 200
    after = scrape(client)

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    total = f"{P}_http_requests_total"
    assert moved(total, view="deploy-sample", method="GET", status="200") == 3
    assert moved(total, view="deploy-sample", method="POST", status="200") == 1
    assert moved(total, view="<unresolved>", method="GET", status="404") == 1
    assert moved(total, view="<static>", method="GET", status="200") == 1
    assert moved(total, view="deploy-broken", method="GET", status="500") == 1
    count = f"{P}_http_request_duration_seconds_count"
    assert moved(count, view="deploy-sample", status="200") == 4
    buckets = after[f"{P}_http_request_duration_seconds_bucket"]
    assert (
        value(
            after,
            f"{P}_http_request_duration_seconds_bucket",
            le="+Inf",
            view="deploy-sample",
            status="200",
        )
        >= 4
    )
    # Cumulative buckets: for one series, a larger `le` never counts fewer requests.
    series = sorted(
        (float(dict(labels)["le"]), count)
        for labels, count in buckets.items()
        if dict(labels).get("view") == "deploy-sample" and dict(labels).get("status") == "200"
    )
    assert len(series) > 2 and [c for _, c in series] == sorted(c for _, c in series)
    # One label value per URL pattern, not per URL: /sample/1, /2, /3 are one series.
    views = {dict(labels)["view"] for labels in after[total]}
    assert not any("/" in view for view in views)


@pytest.mark.django_db
def test_state_gauges_follow_the_database(metrics_settings, alice):
    from apps.releases import services
    from apps.releases.models import Release, ReleaseState

    staging, _prod = factories.make_environments()
    service = factories.make_service()
    version = factories.make_model_version(service.registered_model, 1)
    ids = []
    for _ in range(4):
        release, _ = services.release_create(
            actor=alice, service=service, environment=staging, model_version=version
        )
        ids.append(release.pk)
    an_hour_ago = timezone.now() - timedelta(hours=1)
    Release.objects.filter(pk__in=ids[:2]).update(
        state=ReleaseState.APPROVED, approved_at=an_hour_ago
    )
    Release.objects.filter(pk=ids[2]).update(state=ReleaseState.PENDING_APPROVAL)

    samples = scrape()
    assert value(samples, f"{P}_releases", environment="staging", state="approved") == 2
    assert value(samples, f"{P}_releases", environment="staging", state="pending_approval") == 1
    assert value(samples, f"{P}_releases", environment="staging", state="draft") == 1
    assert value(samples, f"{P}_releases", environment="prod", state="live") == 0
    # Every state is exposed, zeros included, so a series never just disappears.
    states = {dict(k)["state"] for k in samples[f"{P}_releases"]}
    assert states == set(ReleaseState.values)
    assert value(samples, f"{P}_approvals_pending", environment="staging") == 1
    assert value(samples, f"{P}_deploy_queue_depth", environment="staging") == 2
    assert value(samples, f"{P}_deploy_queue_depth", environment="prod") == 0
    oldest = value(samples, f"{P}_deploy_queue_oldest_age_seconds")
    assert 3590 < oldest < 3700
    for part in ("releases", "registry", "metrics_sources"):
        assert value(samples, f"{P}_state_collect_ok", part=part) == 1


@pytest.mark.django_db
def test_registry_sync_age(metrics_settings):
    from apps.registry.models import RegistrySyncState

    samples = scrape()
    assert math.isinf(value(samples, f"{P}_registry_last_sync_age_seconds"))
    assert value(samples, f"{P}_registry_sync_stale") == 1
    RegistrySyncState.objects.create(
        pk=1,
        last_attempt_at=timezone.now() - timedelta(seconds=30),
        last_success_at=timezone.now() - timedelta(seconds=30),
    )
    samples = scrape()
    assert 29 <= value(samples, f"{P}_registry_last_sync_age_seconds") < 60
    assert value(samples, f"{P}_registry_sync_stale") == 0


@pytest.mark.django_db
def test_notification_deliveries_by_channel_and_state(metrics_settings, alice):
    from apps.audit.services import audited_atomic
    from apps.notifications.models import Delivery
    from apps.notifications.services import notification_emit

    samples = scrape()
    assert value(samples, f"{P}_notification_deliveries", channel="email", state="failed") == 0
    with audited_atomic():
        notification_emit(kind="deploy_failed", title="t", path="/", users=[alice])
        notification_emit(kind="deploy_failed", title="u", path="/", users=[alice])
    Delivery.objects.filter(pk=Delivery.objects.order_by("pk")[0].pk).update(state="failed")
    samples = scrape()
    assert value(samples, f"{P}_notification_deliveries", channel="email", state="failed") == 1
    assert value(samples, f"{P}_notification_deliveries", channel="email", state="pending") == 1


@pytest.mark.django_db
def test_metric_source_staleness(metrics_settings):
    from apps.metrics.models import SourceHealth
    from apps.metrics.selectors import source_health

    names = [status.source for status in source_health()]
    assert names, "at least one metric source is configured"
    samples = scrape()
    for name in names:
        assert value(samples, f"{P}_metrics_source_stale", source=name) == 1  # never read
        assert math.isinf(
            value(samples, f"{P}_metrics_source_last_success_age_seconds", source=name)
        )
    SourceHealth.objects.update_or_create(
        source=names[0],
        defaults={
            "last_attempt_at": timezone.now() - timedelta(seconds=5),
            "last_success_at": timezone.now() - timedelta(seconds=5),
            "consecutive_failures": 0,
        },
    )
    samples = scrape()
    assert value(samples, f"{P}_metrics_source_stale", source=names[0]) == 0
    age = value(samples, f"{P}_metrics_source_last_success_age_seconds", source=names[0])
    assert 4 <= age < 30


@pytest.mark.django_db
def test_a_failing_part_is_reported_and_the_rest_still_served(metrics_settings, monkeypatch):
    import apps.registry.selectors

    def broken():
        raise RuntimeError("registry tables missing")

    monkeypatch.setattr(apps.registry.selectors, "sync_status", broken)
    factories.make_environments()
    samples = scrape()
    assert value(samples, f"{P}_state_collect_ok", part="registry") == 0
    assert value(samples, f"{P}_state_collect_ok", part="releases") == 1
    assert f"{P}_registry_last_sync_age_seconds" not in samples
    assert f"{P}_releases" in samples


@pytest.mark.django_db
def test_openmetrics_when_the_scraper_asks(metrics_settings):
    response = Client().get("/metrics", HTTP_ACCEPT="application/openmetrics-text; version=1.0.0")
    assert response["Content-Type"].startswith("application/openmetrics-text")
    names = {family.name for family in openmetrics_families(response.content.decode())}
    assert f"{P}_releases" in names


@pytest.mark.django_db
def test_metrics_token_when_configured(metrics_settings):
    metrics_settings.METRICS_TOKEN = "scrape-me-" + "x" * 30
    assert Client().get("/metrics").status_code == 401
    wrong = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer nope")
    assert wrong.status_code == 401 and wrong["WWW-Authenticate"].startswith("Bearer")
    right = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {metrics_settings.METRICS_TOKEN}")
    assert right.status_code == 200


@pytest.mark.django_db
def test_metrics_are_closed_without_a_token_unless_opened(metrics_settings):
    metrics_settings.METRICS_PUBLIC = False
    closed = Client().get("/metrics")
    assert closed.status_code == 401
    assert b"METRICS_TOKEN" in closed.content and b"METRICS_PUBLIC=1" in closed.content
    assert b"slipway_controlplane" not in closed.content
    # A made-up bearer token opens nothing when none is configured.
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 401
    metrics_settings.METRICS_PUBLIC = True
    assert Client().get("/metrics").status_code == 200


def test_metric_names_never_collide_with_the_model_servers_metrics():
    """Model servers export slipway_requests_total and slipway_request_duration_seconds
    (apps/metrics/conf.py queries them); Slipway's own names must differ."""
    from apps.metrics import conf

    queries = " ".join(conf.DEFAULT_PROMQL.values())
    for name in FAMILIES:
        assert name not in queries
    assert all(name.startswith("slipway_controlplane_") for name in FAMILIES)


@pytest.mark.django_db
def test_with_the_database_down_the_scrape_still_answers_at_once(metrics_settings, monkeypatch):
    """One failed connection is enough: the other parts are not tried (each would wait
    for the connect timeout again, past Prometheus's scrape timeout)."""
    from django.db import OperationalError, connections

    calls = []

    def unreachable(*args, **kwargs):
        calls.append(1)
        raise OperationalError("could not connect to server")

    Client().get("/healthz")
    # Whichever app's collector runs first meets the dead database.
    monkeypatch.setattr(connections["default"], "cursor", unreachable)
    samples = scrape()
    for part in ("releases", "registry", "metrics_sources"):
        assert value(samples, f"{P}_state_collect_ok", part=part) == 0
    assert calls == [1]
    assert f"{P}_http_requests_total" in samples
