"""The shadow evaluation panel is live: pat has the release page of a prod release open
while its shadow evaluation runs (time left, requests so far, approval refused); the
controller stores the report; within one poll the page shows the verdict and the numbers,
shadow next to production, without a reload."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.releases import services
from apps.releases.models import SHADOW_START, ShadowEvaluation
from tests import factories
from tests.browser.conftest import screenshot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_the_report_appears_on_the_open_release_page(
    browser_page, live_server, people, environments, service
):
    _, prod = environments
    prod.promotes_from = None
    prod.shadow_evaluation = "required"
    prod.save()
    alice, pat, carol = people["alice"], people["pat"], people["carol"]
    factories.live_release(service, prod, 3, requester=alice, approvers=(pat, carol))
    candidate = factories.draft_release(service, prod, 4, requester=alice)
    services.release_submit(actor=alice, release=candidate)
    evaluation = ShadowEvaluation.objects.get(release=candidate)  # required: started
    services.shadow_record_commit(evaluation=evaluation, name=SHADOW_START, commit_sha="a" * 40)
    ShadowEvaluation.objects.filter(pk=evaluation.pk).update(
        started_at=timezone.now() - timedelta(minutes=20)
    )
    services.shadow_note(
        evaluation=evaluation,
        message="running: passing so far; observing (20 of 60 minutes)",
        analysis={"requests": {"candidate": 1200.0, "stable": 12000.0}, "checks": []},
        verdict="pass",
        requests=1200.0,
    )

    page = browser_page
    sign_in(page, live_server.url, "pat", factories.PASSWORD)
    page.goto(f"{live_server.url}/releases/{candidate.pk}/")
    panel = page.locator("[data-testid=shadow-evaluation]")
    assert "running" in panel.locator("[data-testid=shadow-state]").inner_text()
    assert "About 40 minutes left" in panel.inner_text()
    assert panel.locator("[data-testid=shadow-requests]").inner_text() == "1200"
    assert "still running" in page.locator("[data-testid=shadow-gate]").inner_text()

    now = timezone.now()
    services.shadow_record_report(
        evaluation=evaluation,
        verdict="pass",
        message="every check passes on 3000 mirrored requests",
        analysis={
            "checks": [
                {
                    "name": "agreement",
                    "candidate": 0.98,
                    "stable": None,
                    "verdict": "pass",
                    "message": "98% agree",
                },
                {
                    "name": "latency_p95",
                    "candidate": 180.0,
                    "stable": 175.0,
                    "verdict": "pass",
                    "message": "p95 ratio 1.03",
                },
            ],
            "requests": {"candidate": 3000.0, "stable": 15000.0},
            "compared": 3000.0,
            "start": (now - timedelta(minutes=60)).isoformat(),
            "end": now.isoformat(),
        },
        requests=3000.0,
    )
    verdict = page.locator("[data-testid=shadow-verdict]")
    verdict.wait_for(timeout=15000)  # the status block polls every 3 s
    assert "every check passes on 3000 mirrored requests" in verdict.inner_text()
    report = page.locator("[data-testid=shadow-report]").inner_text()
    assert "Agreement with production" in report and "98.00%" in report
    assert "180 ms" in report and "175 ms" in report
    assert page.locator("[data-testid=shadow-gate]").count() == 0
    screenshot(page, "shadow-evaluation-report")
