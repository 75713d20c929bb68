"""The stories people play in Slipway, in Debian's Chromium: a reviewer approves a release
through the pages; on-call finds the unhealthy service in the fleet overview, rolls back
with one click and watches it go live; a second click does nothing more."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.metrics.services import metrics_poll
from apps.metrics.sources.demo import TAG_LATENCY, DemoSource
from apps.releases.models import Release, ReleaseKind, ReleaseState
from tests import factories
from tests.browser.conftest import screenshot, sign_in
from tests.waiting import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]
PASSWORD = factories.PASSWORD


def test_reviewers_approve_in_the_browser_and_the_page_follows_it_to_live(
    browser_page, live_server, people, environments, service, cluster
):
    staging, _prod = environments
    alice = people["alice"]
    promotion = factories.pending_promotion(
        service, staging, requester=alice, reason="v1 soaked two hours in staging"
    )
    cluster.start()
    page = browser_page

    sign_in(page, live_server.url, "pat", PASSWORD)
    page.goto(f"{live_server.url}/inbox/")
    page.click(f"a[href='/releases/{promotion.pk}/']")
    page.wait_for_selector("text=What changes in the GitOps repository")
    page.wait_for_selector("#release-diff")  # the diff arrives after the page (htmx)
    screenshot(page, "release-review")
    page.fill("#comment", "Product impact reviewed.")
    page.click("button[value=approve]")
    page.wait_for_selector("text=You approved release")

    sign_in(page, live_server.url, "carol", PASSWORD)
    page.goto(f"{live_server.url}/releases/{promotion.pk}/")
    page.click("button[value=approve]")
    page.wait_for_selector("text=You approved release")
    # No reload from here: the status box polls until the release is live.
    page.wait_for_selector("#release-status .badge.state-live", timeout=30000)
    promotion.refresh_from_db()
    assert promotion.state == ReleaseState.LIVE
    assert sorted(a.approver.username for a in promotion.approvals.all()) == ["carol", "pat"]


def _ship(service, environment, version, alice, *, tags=None, timeout_s=30):
    """Release a version the way an engineer does (create + submit) and wait until the
    cluster thread has committed it and the simulated Argo CD reports it live."""
    factories.make_model_version(service.registered_model, version, tags=tags or {})
    release = factories.approved_release(
        service, environment, version, requester=alice, reason=f"ship v{version}"
    )

    def live():
        release.refresh_from_db()
        return release if release.state == ReleaseState.LIVE else None

    return wait_until(
        live,
        timeout=timeout_s,
        interval=0.2,
        message=lambda: f"release #{release.pk} to go live (it is {release.state})",
    )


@pytest.fixture
def regressed(people, environments, service, cluster, settings):
    """v1 was fine; v2 (tagged slow in the registry) went live and the demo metrics
    source has polled it over its latency SLO several times since."""
    settings.METRICS_BACKEND = "demo"
    staging, _ = environments
    alice = people["alice"]
    cluster.start()
    good = _ship(service, staging, 1, alice)
    bad = _ship(service, staging, 2, alice, tags={TAG_LATENCY: "2.5"})
    # Pretend v2 has been live ten minutes, so its figures are judged (a fresh release's
    # first five-minute window still holds its predecessor's traffic).
    earlier = timezone.now() - timedelta(minutes=10)
    Release.objects.filter(pk=good.pk).update(
        live_at=earlier - timedelta(hours=1), ended_at=earlier
    )
    Release.objects.filter(pk=bad.pk).update(live_at=earlier)
    now = timezone.now()
    for i in range(4):
        metrics_poll(
            now=now - timedelta(seconds=30 * (3 - i)), sources=[DemoSource(poll_seconds=30)]
        )
    good.refresh_from_db()
    bad.refresh_from_db()
    return good, bad


def test_oncall_rolls_back_the_unhealthy_service_with_one_click(
    browser_page, live_server, regressed
):
    good, bad = regressed
    page = browser_page
    sign_in(page, live_server.url, "otto", PASSWORD)
    page.goto(f"{live_server.url}/fleet/")
    first_row = page.locator("table.fleet tbody tr").first
    assert "breach" in first_row.inner_text()  # the unhealthy one is on top
    assert "churn-model" in first_row.inner_text()
    screenshot(page, "fleet-overview")

    first_row.locator("a", has_text="churn-model").click()
    page.wait_for_selector(".chart .main-svg")  # Plotly drew the charts
    screenshot(page, "service-dashboard")

    page.click("button[data-open-dialog]")
    dialog = page.locator("#rollback-dialog")
    text = dialog.inner_text()
    assert f"v2 (release #{bad.pk}" in text and f"v1 (release #{good.pk}" in text
    dialog.locator("textarea").fill("p95 more than doubled after v2 went live")
    screenshot(page, "rollback-dialog", full_page=False)
    confirm = dialog.locator("button[type=submit]")
    confirm.dblclick()  # an impatient double click
    page.wait_for_selector("text=is under way")
    page.wait_for_selector("#rollback-progress .steps li.done:has-text('live')", timeout=30000)
    screenshot(page, "rollback-live")
    # Once live, the page reloads itself: history and live card show the rollback.
    page.wait_for_function("!document.body.innerText.includes('Rollback under way')")

    rollbacks = Release.objects.filter(kind=ReleaseKind.ROLLBACK)
    assert rollbacks.count() == 1
    rollback = rollbacks.get()
    assert rollback.state == ReleaseState.LIVE and rollback.rollback_target_id == good.pk
    bad.refresh_from_db()
    assert bad.state == ReleaseState.ROLLED_BACK
    # A second click from the now-stale page state does nothing more.
    page.goto(f"{live_server.url}/dashboards/churn-model/staging/")
    buttons = page.locator("button[data-open-dialog]")
    if buttons.count():
        buttons.first.click()
        page.locator("#rollback-dialog textarea").fill("again")
        page.locator("#rollback-dialog button[type=submit]").click()
        page.wait_for_load_state("networkidle")
    assert Release.objects.filter(kind=ReleaseKind.ROLLBACK).count() <= 2
    assert Release.objects.filter(kind=ReleaseKind.ROLLBACK, rolled_back_release=bad).count() == 1


def test_two_people_rolling_back_at_once_make_one_rollback(
    chromium, live_server, regressed, cluster
):
    cluster.stop()  # keep the rollback queued, so each page keeps the answer it was given
    pages = []
    for name in ("otto", "ada"):
        context = chromium.new_context()
        page = context.new_page()
        sign_in(page, live_server.url, name, PASSWORD)
        page.goto(f"{live_server.url}/dashboards/churn-model/staging/")
        page.click("button[data-open-dialog]")
        page.locator("#rollback-dialog textarea").fill(f"{name}: p95 regression")
        pages.append(page)
    for page in pages:  # both confirm, as close together as two people can
        page.locator("#rollback-dialog button[type=submit]").click(no_wait_after=True)
    answers = sorted(page.locator(".messages li").first.inner_text() for page in pages)
    assert Release.objects.filter(kind=ReleaseKind.ROLLBACK).count() == 1
    assert "already under way" in answers[0] and "is under way" in answers[1], answers
    for page in pages:
        page.context.close()


@pytest.mark.parametrize("width", [1280, 390])
def test_pages_fit_the_screen(browser_page, live_server, people, environments, service, width):
    factories.live_release(service, environments[0], 1, requester=people["alice"])
    page = browser_page
    page.set_viewport_size({"width": width, "height": 800})
    sign_in(page, live_server.url, "otto", PASSWORD)
    for path in ("/fleet/", "/dashboards/churn-model/staging/", "/releases/"):
        page.goto(f"{live_server.url}{path}")
        page.wait_for_load_state("networkidle")
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{path} is {overflow}px wider than a {width}px screen"
    if width == 390:
        page.goto(f"{live_server.url}/fleet/")
        screenshot(page, "fleet-phone")


def test_a_page_loads_nothing_from_the_internet(
    browser_page, live_server, people, environments, service
):
    factories.live_release(service, environments[0], 1, requester=people["alice"])
    sign_in(browser_page, live_server.url, "alice", PASSWORD)
    for path in ("/fleet/", "/dashboards/churn-model/staging/", "/releases/new/", "/api/v1/docs/"):
        browser_page.goto(f"{live_server.url}{path}")
        browser_page.wait_for_load_state("networkidle")
    html = browser_page.content()
    assert not re.search(r"https?://(?!127\.0\.0\.1|localhost)[^\"']+\.(js|css)", html)
    # browser_page's teardown fails the test if any request left the live server
