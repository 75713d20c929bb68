"""The "Service levels" panel on the release page: soak evidence for a promotion, a
release's own figures, breaches and recoveries, and the guard's decision."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.metrics.models import MetricSample
from apps.metrics.panels import slo_panel
from apps.metrics.services import metrics_poll
from apps.releases.models import Environment, Release
from tests import factories

pytestmark = pytest.mark.django_db


def _samples(release, metric, values):
    now = timezone.now()
    MetricSample.objects.bulk_create(
        MetricSample(
            service_id=release.service_id,
            environment_id=release.environment_id,
            release_id=release.pk,
            metric=metric,
            time=now - timedelta(seconds=30 * (len(values) - i)),
            value=value,
        )
        for i, value in enumerate(values)
    )


def test_a_promotion_shows_the_staging_soak_evidence(client, alice, staging, service):
    promotion = factories.pending_promotion(service, staging, requester=alice, reason="ship it")
    live = promotion.promoted_from
    _samples(live, "latency_p95_ms", [120.0, 180.0, 300.0])  # SLO 250: one poll over
    _samples(live, "error_rate", [0.001, 0.002])
    client.force_login(alice)
    page = client.get(reverse("releases:detail", args=[promotion.pk])).content.decode()
    assert "Service levels" in page
    assert f"Soak evidence: #{live.pk} in staging" in page
    assert "1 of 3" in page  # polls over the p95 SLO
    assert "300 ms" in page  # the worst p95
    assert "over SLO" in page


def test_a_pending_first_release_has_no_panel(alice, staging, service, model_versions):
    release = factories.draft_release(service, staging, 1, requester=alice, reason="first")
    assert slo_panel(release) is None


def test_breaches_and_the_guard_decision_appear_on_both_releases(
    client, otto, alice, service, settings, django_capture_on_commit_callbacks
):
    settings.METRICS_BACKEND = "demo"
    env = Environment.objects.create(name="canary", auto_rollback=True, bake_minutes=30)
    factories.live_release(service, env, 1, requester=alice)
    bad_version = factories.make_model_version(service.registered_model, 2)
    bad_version.tags = {"demo.latency_multiplier": "2.5"}
    bad_version.save()
    bad = factories.live_release(service, env, 2, requester=alice)
    now = timezone.now()
    for i in range(3):
        metrics_poll(now=now + timedelta(seconds=30 * i))
    rollback = Release.objects.get(rolled_back_release=bad)
    client.force_login(otto)
    page = client.get(reverse("releases:detail", args=[bad.pk])).content.decode()
    assert "Auto-rollback guard: Rolled back" in page
    assert f"rollback #{rollback.pk}" in page
    assert page.count(">Breach<") == 2  # latency and errors
    page = client.get(reverse("releases:detail", args=[rollback.pk])).content.decode()
    assert "Created by the auto-rollback guard" in page
