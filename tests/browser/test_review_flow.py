"""The reviewer's path in Debian's Chromium, timed: sign in, land on "Waiting for me",
open the release, read it top to bottom, approve. And a release page left open while the
soak completes: the promotion button enables by itself, without a reload."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.metrics.models import MetricSample
from apps.releases import services
from apps.releases.models import Approval, Environment, Release
from tests import factories
from tests.browser.conftest import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]
PASSWORD = factories.PASSWORD


def _live_in_staging(service, staging, version, *, alice, live_since, overrides=None):
    mv = factories.make_model_version(service.registered_model, version)
    release, _ = services.release_create(
        actor=alice,
        service=service,
        environment=staging,
        model_version=mv,
        config_overrides=overrides,
        reason=f"ship v{version}",
    )
    services.release_submit(actor=alice, release=release)
    release.refresh_from_db()
    live = factories.release_to_live(release)
    Release.objects.filter(pk=live.pk).update(live_at=live_since)
    live.refresh_from_db()
    return live


def _soak_samples(release, *, minutes: int):
    """One poll a minute while ``release`` soaked, well within its SLOs."""
    figures = {"latency_p95_ms": 182.0, "error_rate": 0.002, "request_rate": 41.0}
    MetricSample.objects.bulk_create(
        MetricSample(
            service_id=release.service_id,
            environment_id=release.environment_id,
            release=release,
            metric=metric,
            time=release.live_at + timedelta(minutes=i),
            value=value,
        )
        for i in range(minutes)
        for metric, value in figures.items()
    )


@pytest.fixture
def waiting_review(people, environments, service, cluster):
    """prod runs v1; v2 soaked 3 minutes in staging (prod asks for 2) within its SLOs, with
    3 replicas instead of 2, better on 2 quality metrics and worse on 1; it waits for pat."""
    staging, prod = environments
    Environment.objects.filter(pk=prod.pk).update(min_soak_minutes=2)
    alice = people["alice"]
    factories.make_model_version(
        service.registered_model, 1, run_metrics={"accuracy": 0.8, "recall": 0.7, "log_loss": 0.3}
    )
    factories.make_model_version(
        service.registered_model,
        2,
        run_metrics={"accuracy": 0.85, "recall": 0.75, "log_loss": 0.35},
        description="Retrained on November data; adds the tenure feature.",
    )
    v1 = _live_in_staging(
        service, staging, 1, alice=alice, live_since=timezone.now() - timedelta(days=3)
    )
    prod_v1, _ = services.release_promote(actor=alice, source=v1, reason="v1 to prod")
    services.release_approve(actor=people["pat"], release=prod_v1)
    services.release_approve(actor=people["carol"], release=prod_v1)
    prod_v1.refresh_from_db()
    factories.release_to_live(prod_v1)
    v2 = _live_in_staging(
        service,
        staging,
        2,
        alice=alice,
        live_since=timezone.now() - timedelta(minutes=3, seconds=20),
        overrides={"replicas": {"min": 3, "max": 6}},
    )
    _soak_samples(v2, minutes=3)
    pending, _ = services.release_promote(
        actor=alice, source=v2, reason="Better recall on November data; soaked in staging."
    )
    return pending


def test_reviewer_path_from_sign_in_to_recorded_approval(browser_page, live_server, waiting_review):
    page, clicks = browser_page, 0
    started = time.monotonic()
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", "pat")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    clicks += 1
    page.wait_for_url(f"{live_server.url}/inbox/")  # reviewers land on "Waiting for me"
    page.click(f"a[href='/releases/{waiting_review.pk}/']")
    clicks += 1
    page.wait_for_selector("#release-diff .change-summary")  # the change arrives via htmx
    summary = page.inner_text("#review-summary")
    assert "Model v1 -> v2" in summary
    assert "Quality: 2 metrics better, 1 worse" in summary
    assert "Staging: within SLOs for 3 min of 2 required" in summary
    assert page.is_visible("button[value=approve]")  # in reach without scrolling: sticky
    assert not page.is_visible("#release-diff pre.diff")  # raw diff folded away
    screenshot(page, "release-review-desktop-full")
    # docs/screenshots/release-review.png is a copy of this one (copied by hand, so a
    # test run leaves the tracked tree alone).
    screenshot(page, "release-review-desktop", full_page=False)
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.is_visible("button[value=approve]")
    screenshot(page, "release-review-phone", full_page=False)
    screenshot(page, "release-review-phone-full")
    page.set_viewport_size({"width": 1280, "height": 900})

    page.fill("#comment", "Product impact reviewed.")
    page.click("button[value=approve]")
    clicks += 1
    page.wait_for_selector("text=You approved release")
    seconds = time.monotonic() - started
    approval = Approval.objects.get(release=waiting_review, approver__username="pat")
    assert approval.evidence["summary"][0] == "Model v1 -> v2"
    print(f"\nreviewer path sign-in -> approval recorded: {clicks} clicks, {seconds:.1f} s")
    assert clicks == 3


def test_open_release_page_enables_promotion_when_the_soak_completes(
    browser_page, live_server, people, environments, service
):
    staging, prod = environments
    Environment.objects.filter(pk=prod.pk).update(min_soak_minutes=1)
    # A one-minute soak that completes a few seconds after the page opens.
    source = _live_in_staging(
        service,
        staging,
        1,
        alice=people["alice"],
        live_since=timezone.now() - timedelta(seconds=52),
    )
    page = browser_page
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/accounts/login" not in url)
    page.goto(f"{live_server.url}/releases/{source.pk}/")
    button = page.locator("[data-testid=promote-prod]")
    assert button.is_disabled()
    assert "0 min of the 1 min required" in page.inner_text(".soak-gate")
    page.evaluate("window.__stillTheSamePage = true")

    page.wait_for_selector("[data-testid=promote-prod]:not([disabled])", timeout=30000)
    assert page.evaluate("window.__stillTheSamePage === true")  # no reload happened
    assert "ready to promote" in page.inner_text(".soak-gate")
    assert page.is_visible("#promote-reason-prod")


def test_open_review_page_follows_other_approvals_and_shows_what_approvers_saw(
    browser_page, live_server, people, waiting_review
):
    page = browser_page
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", "pat")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/inbox/")
    page.goto(f"{live_server.url}/releases/{waiting_review.pk}/")
    page.evaluate("window.__stillTheSamePage = true")

    services.release_approve(actor=people["carol"], release=waiting_review, comment="ok")
    page.wait_for_selector("#approvals >> text=by carol", timeout=15000)
    page.wait_for_selector("#summary-approvals >> text=1 of 2", timeout=15000)
    assert page.evaluate("window.__stillTheSamePage === true")  # no reload happened
    assert page.is_visible("button[value=approve]")  # pat's own slot is still open

    page.click("button[value=approve]")
    page.wait_for_selector("text=You approved release")
    waiting_review.refresh_from_db()
    factories.release_to_live(waiting_review)
    page.reload()
    saw = page.inner_text("#approver-snapshots")
    assert "carol as compliance-reviewer" in saw and "pat as product-reviewer" in saw
    assert "Quality metrics against v1, live in prod" in saw
    screenshot(page, "release-approvers-saw")
