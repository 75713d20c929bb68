"""Accessibility in Debian's Chromium: approve and roll back with the keyboard alone, and
axe-core finds no serious or critical violation on any page.

axe-core runs from the copy a Python package ships (``axe-playwright-python`` bundles
``axe.min.js``), injected into the page: nothing is fetched from a CDN, and the browser
fixture fails any test whose pages try to.
"""

from __future__ import annotations

import importlib.util
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from apps.releases import services
from apps.releases.models import Release, ReleaseKind, ReleaseState
from tests import factories
from tests.browser.conftest import sign_in
from tests.browser.test_browser_flows import regressed  # noqa: F401 - a shared fixture
from tests.waiting import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]
PASSWORD = factories.PASSWORD
AXE_PACKAGE = "axe_playwright_python"
BLOCKING_IMPACTS = {"serious", "critical"}


def _axe_source() -> str:
    spec = importlib.util.find_spec(AXE_PACKAGE)
    if spec is None or spec.origin is None:
        pytest.skip(
            "axe-core is not installed: add axe-playwright-python (0.1.8; it ships "
            "axe.min.js) to the dev extra and the lock"
        )
    found = sorted(Path(spec.origin).parent.rglob("axe.min.js"))
    if not found:
        pytest.skip(f"{AXE_PACKAGE} is installed but ships no axe.min.js")
    return found[0].read_text(encoding="utf-8")


def _axe_violations(page, source: str) -> list[dict]:
    """Serious and critical axe violations of the page as it is now."""
    # Evaluated through the DevTools protocol, which the page's CSP (script-src 'self',
    # no inline script) does not govern; a <script> tag would be refused, as it should.
    page.evaluate(f"{source}\n;undefined")
    result = page.evaluate(
        """async () => {
            const r = await axe.run(document, {resultTypes: ['violations']});
            return r.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help,
                targets: v.nodes.slice(0, 3).map(n => n.target.join(' ')),
            }));
        }"""
    )
    return [v for v in result if v["impact"] in BLOCKING_IMPACTS]


def _tab_to(page, selector: str, *, limit: int = 200) -> None:
    """Press Tab until the element matching ``selector`` has the focus, as a keyboard
    user would; fail if it is never reached."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("s => document.activeElement?.matches(s) ?? false", selector):
            return
    raise AssertionError(f"{selector} never took the keyboard focus in {limit} Tab presses")


def test_a_reviewer_approves_with_the_keyboard_alone(
    browser_page, live_server, people, environments, service
):
    staging, _prod = environments
    alice = people["alice"]
    source = factories.live_release(service, staging, 1, requester=alice)
    Release.objects.filter(pk=source.pk).update(live_at=timezone.now() - timedelta(hours=2))
    source.refresh_from_db()
    promotion, _ = services.release_promote(actor=alice, source=source, reason="soaked")
    page = browser_page
    sign_in(page, live_server.url, "pat", PASSWORD)
    page.goto(f"{live_server.url}/releases/{promotion.pk}/")
    page.wait_for_load_state("networkidle")

    _tab_to(page, "#comment")
    page.keyboard.type("Reviewed with the keyboard only.")
    _tab_to(page, "button[value=approve]")
    page.keyboard.press("Enter")
    page.wait_for_selector("text=You approved release")
    approval = promotion.approvals.get()
    assert approval.approver.username == "pat"
    assert approval.comment == "Reviewed with the keyboard only."


def test_oncall_rolls_back_with_the_keyboard_alone(browser_page, live_server, regressed):  # noqa: F811
    good, bad = regressed
    page = browser_page
    sign_in(page, live_server.url, "otto", PASSWORD)
    page.goto(f"{live_server.url}/dashboards/{bad.service.name}/{bad.environment.name}/")
    page.wait_for_load_state("networkidle")

    _tab_to(page, "button[data-open-dialog]")
    page.keyboard.press("Enter")
    page.wait_for_selector("#rollback-dialog[open]")
    if not page.evaluate("document.activeElement?.matches('#rollback-dialog textarea')"):
        _tab_to(page, "#rollback-dialog textarea", limit=20)
    page.keyboard.type("p95 doubled after the deploy")
    _tab_to(page, "#rollback-dialog button[type=submit]", limit=20)
    page.keyboard.press("Space")
    page.wait_for_selector("text=is under way")
    wait_until(
        lambda: Release.objects.filter(kind=ReleaseKind.ROLLBACK).exists(),
        timeout=30,
        message="the keyboard rollback to be recorded",
    )
    rollback = Release.objects.get(kind=ReleaseKind.ROLLBACK)
    assert rollback.rollback_target_id == good.pk
    assert rollback.state != ReleaseState.DRAFT


def test_no_serious_or_critical_axe_violations_on_any_page(
    browser_page, live_server, people, environments, service
):
    source = _axe_source()
    staging, _prod = environments
    alice = people["alice"]
    live = factories.live_release(service, staging, 1, requester=alice)
    Release.objects.filter(pk=live.pk).update(live_at=timezone.now() - timedelta(hours=2))
    live.refresh_from_db()
    promotion, _ = services.release_promote(actor=alice, source=live, reason="soaked")
    page = browser_page
    found: dict[str, list[dict]] = {}

    def check(path: str) -> None:
        page.goto(f"{live_server.url}{path}")
        page.wait_for_load_state("networkidle")
        violations = _axe_violations(page, source)
        if violations:
            found[path] = violations

    check("/accounts/login/")
    sign_in(page, live_server.url, "ada", PASSWORD)
    for path in (
        "/fleet/",
        f"/dashboards/{service.name}/{staging.name}/",
        "/releases/",
        "/releases/new/",
        f"/releases/{promotion.pk}/",
        "/inbox/",
        "/audit/",
        "/notifications/settings/",
        "/no-such-page/",
    ):
        check(path)
    assert not found, "\n".join(
        f"{path}: {v['impact']} {v['id']} ({v['help']}) at {', '.join(v['targets'])}"
        for path, violations in found.items()
        for v in violations
    )
