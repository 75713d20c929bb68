"""On-call finds an unapproved change on the fleet page, opens the live release, and
restores the approved files with one click and a reason, in Debian's Chromium; the
cluster thread commits the restore, the simulated Argo CD syncs it, the mark clears."""

from __future__ import annotations

import time

import pytest

from apps.audit.models import AuditEvent
from apps.gitops.render import manifests_digest
from apps.releases import services
from apps.releases.models import Release, ReleaseKind, ReleaseState, ServiceEnvironment
from tests import factories
from tests.browser.conftest import screenshot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]
FOLDER = "environments/staging/churn-model"


def _until(predicate, timeout_s=30.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def _drifted(service, environment) -> bool:
    target = ServiceEnvironment.objects.filter(service=service, environment=environment).first()
    return bool(target and target.drift_revision)


def test_oncall_restores_the_approved_files_from_the_release_page(
    browser_page, live_server, people, environments, service, cluster, gitops_remote
):
    staging, _ = environments
    alice = people["alice"]
    cluster.start()
    mv = factories.make_model_version(service.registered_model, 1)
    live, _ = services.release_create(
        actor=alice, service=service, environment=staging, model_version=mv, reason="ship v1"
    )
    services.release_submit(actor=alice, release=live)
    assert _until(lambda: Release.objects.get(pk=live.pk).state == ReleaseState.LIVE)
    live.refresh_from_db()
    name = sorted(n for n in live.rendered_files if n != "kustomization.yaml")[0]
    gitops_remote.outside_commit(
        f"{FOLDER}/{name}", live.rendered_files[name] + "# edited by hand\n", "quick fix"
    )
    assert _until(lambda: _drifted(service, staging)), "the poll never saw the change"

    page = browser_page
    sign_in(page, live_server.url, "otto", factories.PASSWORD)
    page.goto(f"{live_server.url}/fleet/")
    first_row = page.locator("table.fleet tbody tr").first
    assert "unapproved" in first_row.inner_text() and name in first_row.inner_text()
    screenshot(page, "drift-fleet")
    first_row.locator(".drift-cell a").click()
    box = page.locator("#drift")
    assert name in box.inner_text()
    box.locator("button[data-open-dialog]").click()
    dialog = page.locator("#restore-dialog")
    dialog.locator("textarea").fill("hand edit in the staging folder, not reviewed")
    screenshot(page, "drift-restore-dialog", full_page=False)
    dialog.locator("button[type=submit]").dblclick()  # an impatient double click
    page.wait_for_selector("text=is under way")

    restores = Release.objects.filter(kind=ReleaseKind.ROLLBACK)
    assert restores.count() == 1
    restore = restores.get()
    assert _until(lambda: Release.objects.get(pk=restore.pk).state == ReleaseState.LIVE)
    assert _until(lambda: not _drifted(service, staging)), "the mark never cleared"
    restore.refresh_from_db()
    assert manifests_digest(gitops_remote.files_at(FOLDER)) == live.digest == restore.digest
    assert AuditEvent.objects.filter(action="release.unapproved_change").count() == 1
    page.goto(f"{live_server.url}/fleet/")
    assert "unapproved" not in page.locator("table.fleet tbody").inner_text()
    screenshot(page, "drift-restored-fleet")
