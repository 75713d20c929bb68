"""Live pages in Debian's Chromium: a page stays open while the state changes underneath
(a breach starts, a rollback goes live) and shows it without a reload; and the on-call
path fleet -> committed rollback, timed and counted in clicks."""

from __future__ import annotations

import shutil
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from apps.metrics.services import metrics_poll
from apps.metrics.sources.demo import TAG_LATENCY, DemoSource
from apps.releases.models import Release, ReleaseKind, ReleaseState
from tests import factories
from tests.browser.conftest import ARTIFACTS, screenshot, sign_in
from tests.browser.test_browser_flows import _ship

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]
PASSWORD = factories.PASSWORD
DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
POLL_SECONDS = 2  # the pages' poll period in these tests; every wait allows a few periods


def _shot(page, name: str, *, full_page: bool = True, docs: str | None = None) -> None:
    """A screenshot at desktop width and one at phone width, into test-artifacts/;
    ``docs`` names the refreshed copy of the desktop one in docs/screenshots/."""
    size = page.viewport_size
    screenshot(page, f"{name}-1280", full_page=full_page)
    if docs:
        shutil.copyfile(ARTIFACTS / f"{name}-1280.png", DOCS_SCREENSHOTS / docs)
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(300)  # let Plotly's responsive resize settle (layout, not state)
    screenshot(page, f"{name}-390", full_page=full_page)
    page.set_viewport_size(size)


def _mark_page(page) -> None:
    """A flag in the page's JavaScript state: a reload or navigation would lose it."""
    page.evaluate("window.__stillTheSamePage = true")


def _assert_not_reloaded(page) -> None:
    assert page.evaluate("window.__stillTheSamePage === true"), "the page was reloaded"


def _poll_metrics(times: int = 4) -> None:
    now = timezone.now()
    for i in range(times):
        metrics_poll(
            now=now - timedelta(seconds=30 * (times - 1 - i)),
            sources=[DemoSource(poll_seconds=30)],
        )


@pytest.fixture
def slow_v2(people, environments, service, cluster, settings):
    """v1 was fine; v2 (tagged slow in the registry) is live, not yet polled."""
    settings.METRICS_BACKEND = "demo"
    settings.LIVE_POLL_SECONDS = POLL_SECONDS
    staging, _ = environments
    alice = people["alice"]
    cluster.start()
    good = _ship(service, staging, 1, alice)
    bad = _ship(service, staging, 2, alice, tags={TAG_LATENCY: "2.5"})
    earlier = timezone.now() - timedelta(minutes=10)
    Release.objects.filter(pk=good.pk).update(
        live_at=earlier - timedelta(hours=1), ended_at=earlier
    )
    Release.objects.filter(pk=bad.pk).update(live_at=earlier)
    good.refresh_from_db()
    bad.refresh_from_db()
    return good, bad


def test_the_fleet_shows_a_breach_that_starts_after_the_page_opened(
    browser_page, live_server, slow_v2
):
    page = browser_page
    sign_in(page, live_server.url, "otto", PASSWORD)
    page.goto(f"{live_server.url}/fleet/")
    row = page.locator("table.fleet tbody tr[data-target='churn-model/staging']")
    expect(row).to_be_visible()
    assert "breaching" not in row.inner_text()
    _mark_page(page)

    _poll_metrics()  # the metrics poll judges v2 over its SLO, K polls in a row

    expect(row.locator(".breach-since")).to_contain_text("breaching since", timeout=15_000)
    expect(row).to_contain_text("breaching SLO 250 ms")
    expect(row.locator("button", has_text="Roll back to v1")).to_be_visible()
    _assert_not_reloaded(page)
    _shot(page, "live-fleet-breach", docs="fleet-overview.png")


def test_the_dashboard_shows_the_rollback_going_live(browser_page, live_server, slow_v2):
    good, bad = slow_v2
    _poll_metrics()
    page = browser_page
    sign_in(page, live_server.url, "otto", PASSWORD)
    page.goto(f"{live_server.url}/dashboards/churn-model/staging/")
    page.wait_for_selector(".chart .main-svg")
    expect(page.locator(".banner.breach")).to_contain_text("SLO breached since")
    expect(page.locator(".kpi-breach").first).to_contain_text("breaching SLO 250 ms")
    _shot(page, "live-dashboard-breach", docs="service-dashboard.png")
    _mark_page(page)

    # Somebody else rolls back (another tab, the API); this page only watches.
    from apps.releases import services

    otto = factories.make_user("otto")
    rollback = services.release_rollback(
        actor=otto,
        service=good.service,
        environment=good.environment,
        reason="p95 regression",
        target=good,
    )
    box = page.locator("#rollback-progress [data-rollback-state]")
    expect(box).to_be_visible(timeout=15_000)
    expect(page.locator("[data-rollback-state='succeeded']")).to_be_visible(timeout=40_000)
    expect(page.locator(f"[data-live-release='{rollback.pk}']")).to_be_visible(timeout=15_000)
    # The charts follow too (Plotly.react from the JSON endpoint): the rollback's marker.
    expect(page.locator("[data-marker-list]")).to_contain_text("v1 ↩", timeout=15_000)
    expect(page.locator(".rollback-box.rollback-succeeded")).to_contain_text("succeeded")
    _assert_not_reloaded(page)
    _shot(page, "live-dashboard-rollback", docs="rollback-live.png")
    bad.refresh_from_db()
    assert bad.state == ReleaseState.ROLLED_BACK


def test_oncall_path_fleet_to_committed_rollback_in_two_clicks(browser_page, live_server, slow_v2):
    good, bad = slow_v2
    _poll_metrics()
    page = browser_page
    sign_in(page, live_server.url, "otto", PASSWORD)
    page.goto(f"{live_server.url}/fleet/")
    row = page.locator("table.fleet tbody tr[data-target='churn-model/staging']")
    expect(row.locator(".breach-since")).to_be_visible()

    started = time.monotonic()
    clicks = 0
    row.locator("button", has_text="Roll back to v1").click()
    clicks += 1
    dialog = page.locator("#rollback-dialog")
    expect(dialog).to_be_visible()
    reason = dialog.locator("textarea").input_value()
    assert reason.startswith("p95 ") and "over SLO 250 ms since" in reason, reason
    assert f"v1 (release #{good.pk}" in dialog.inner_text()
    _shot(page, "live-rollback-dialog", full_page=False, docs="rollback-dialog.png")
    started = time.monotonic()  # screenshots are not on-call's time
    dialog.locator("button[type=submit]").click()
    clicks += 1
    deadline = time.monotonic() + 20
    committed = None
    while time.monotonic() < deadline:
        committed = Release.objects.filter(
            kind=ReleaseKind.ROLLBACK, rolled_back_release=bad
        ).exclude(commit_sha="")
        if committed.exists():
            break
        page.wait_for_timeout(100)
    seconds = time.monotonic() - started
    print(f"\non-call path fleet -> committed rollback: {clicks} clicks, {seconds:.1f} s")
    assert committed is not None and committed.count() == 1
    assert clicks == 2 and seconds < 10
    rollback = committed.get()
    assert rollback.rollback_target_id == good.pk and rollback.reason == reason
