"""A freeze shows where promotion is offered, live: alice has a soaked staging release
open, ready to promote; an admin adds a freeze window on prod; within one poll the page
says prod is frozen, why and until when, and the promote button is disabled, without a
reload and without losing what she had typed."""

from __future__ import annotations

import pytest

from apps.releases.freeze import freeze_status
from tests import factories
from tests.browser.conftest import screenshot, sign_in
from tests.releases.test_freeze import freeze_now

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_a_freeze_that_starts_shows_on_the_open_release_page(
    browser_page, live_server, people, environments, service
):
    staging, prod = environments
    factories.make_model_version(service.registered_model, 1)
    source = factories.live_release(service, staging, 1, requester=people["alice"])
    factories.backdate_live(source)
    page = browser_page
    sign_in(page, live_server.url, "alice", factories.PASSWORD)
    page.goto(f"{live_server.url}/releases/{source.pk}/")
    button = page.locator("[data-testid=promote-prod]")
    assert button.is_enabled()
    page.fill("#promote-reason-prod", "soaked two hours")

    freeze_now(prod, reason="Holiday change freeze")
    banner = page.locator("[data-testid=freeze-banner-prod]")
    banner.wait_for(timeout=15000)  # the status block polls every 3 s
    until = freeze_status(prod).calendar_until
    text = banner.inner_text()
    assert "prod is frozen" in text and "Holiday change freeze" in text
    assert f"{until:%Y-%m-%d %H:%M} UTC" in text
    assert button.is_disabled()
    # The poll swapped the block around the textarea, not through it.
    assert page.input_value("#promote-reason-prod") == "soaked two hours"
    screenshot(page, "freeze-banner")
