"""The release tasks, run in-process (``apply``) against the real test database, with
what they send read back from the suite's broker."""

from __future__ import annotations

import pytest

from apps.releases import services, tasks
from apps.releases.models import ReleaseState
from tests.fixtures.broker import sent


@pytest.fixture
def status_poll(settings):
    """The status-poll task on the demo cluster reader with no repository configured:
    with nothing live or deploying it asks the cluster nothing."""
    settings.CLUSTER_BACKEND = "demo"
    settings.GITOPS_REPO_URL = ""

    def run():
        tasks.follow_rollouts_task.apply().get()

    return run


def _approved(alice, staging, service, model_version):
    draft, _ = services.release_create(
        actor=alice, service=service, environment=staging, model_version=model_version
    )
    release = services.release_submit(actor=alice, release=draft)  # staging: no reviewers
    assert release.state == ReleaseState.APPROVED
    return release


@pytest.mark.django_db
def test_the_status_poll_resends_the_deploy_while_an_approved_release_waits(
    status_poll, celery_queue, alice, staging, service, model_versions
):
    _approved(alice, staging, service, model_versions[0])
    status_poll()
    assert sent(celery_queue) == [("releases.deploy_pending", {"resend": True})]


@pytest.mark.django_db
def test_the_status_poll_resends_for_a_claimed_release_that_has_no_commit(
    status_poll, celery_queue, alice, staging, service, model_versions
):
    release = _approved(alice, staging, service, model_versions[0])
    assert services.release_deploy_claim(release=release)  # its worker then died
    status_poll()
    assert sent(celery_queue) == [("releases.deploy_pending", {"resend": True})]


@pytest.mark.django_db
def test_the_status_poll_sends_nothing_when_nothing_waits(
    status_poll, celery_queue, alice, staging, service, model_versions
):
    release = _approved(alice, staging, service, model_versions[0])
    services.release_cancel(actor=alice, release=release, reason="wrong version")
    status_poll()
    assert sent(celery_queue) == []
