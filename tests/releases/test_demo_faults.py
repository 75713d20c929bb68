"""The demo simulator plays a failed sync and a model that fails to load, chosen by the
model version's ``demo.fail`` MLflow tag; the release page says why after one poll.

Real git (a bare repository made from the template), the real simulator, the real
status poll and the release status fragment the page refreshes every few seconds."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.gitops.demo_cluster import DemoClusterReader
from apps.releases import rollout, services
from apps.releases.cluster import demo_fault
from apps.releases.deploy import deploy_pending
from apps.releases.models import Release, ReleaseKind, ReleaseState
from tests import factories


@pytest.fixture
def writer(gitops_remote, make_git_writer):
    return make_git_writer(gitops_remote.url)


@pytest.fixture
def demo(gitops_remote):
    return DemoClusterReader(repository=gitops_remote.path, sync_delay=0, fault=demo_fault)


def _deploy(alice, staging, service, writer, version, tags=None):
    mv = factories.make_model_version(service.registered_model, version, tags=tags or {})
    release, _ = services.release_create(
        actor=alice, service=service, environment=staging, model_version=mv, reason="demo"
    )
    release = services.release_submit(actor=alice, release=release)
    deploy_pending(writer=writer)
    release.refresh_from_db()
    assert release.state == ReleaseState.DEPLOYING and release.commit_sha
    return release


def _page_says(client, user, release, text):
    client.force_login(user)
    response = client.get(reverse("releases:status", args=[release.pk]))
    assert response.status_code == 200
    assert text in response.content.decode()


def test_an_untagged_version_goes_live(alice, staging, service, writer, demo):
    release = _deploy(alice, staging, service, writer, 1)
    assert rollout.follow_rollouts(reader=demo, writer=writer) == [(release.pk, "live")]


def test_demo_fail_sync_fails_at_once_and_restores(alice, staging, service, writer, demo, client):
    good = _deploy(alice, staging, service, writer, 1)
    rollout.follow_rollouts(reader=demo, writer=writer)
    bad = _deploy(alice, staging, service, writer, 2, tags={"demo.fail": "sync"})
    assert rollout.follow_rollouts(reader=demo, writer=writer) == [(bad.pk, "failed")]
    bad.refresh_from_db()
    assert bad.state == ReleaseState.FAILED
    assert "admission webhook" in bad.status_message and "demo.fail=sync" in bad.status_message
    _page_says(client, alice, bad, "admission webhook")
    restore = Release.objects.get(kind=ReleaseKind.ROLLBACK)
    assert restore.rollback_target_id == good.pk
    deploy_pending(writer=writer)
    restore.refresh_from_db()
    # The restore's model version has no tag: the simulator lets it go live.
    assert rollout.follow_rollouts(reader=demo, writer=writer) == [(restore.pk, "live")]


def test_demo_fail_load_says_why_on_the_first_poll_then_fails(
    alice, staging, service, writer, demo, client
):
    _deploy(alice, staging, service, writer, 1)
    rollout.follow_rollouts(reader=demo, writer=writer)
    bad = _deploy(alice, staging, service, writer, 2, tags={"demo.fail": "LOAD"})
    now = timezone.now()
    assert rollout.follow_rollouts(reader=demo, writer=writer, now=now) == [(bad.pk, "waiting")]
    bad.refresh_from_db()
    assert "model failed to load" in bad.status_message
    _page_says(client, alice, bad, "model failed to load")
    later = now + rollout.DEGRADED_GRACE + timedelta(seconds=1)
    assert rollout.follow_rollouts(reader=demo, writer=writer, now=later) == [(bad.pk, "failed")]


def test_demo_fail_load_on_a_seldon_model_is_read_from_the_model(alice, staging, writer, demo):
    service = factories.make_service(
        "fraud-model", runtime="seldon", default_config={"storage_uri": "gs://models/fraud/1"}
    )
    bad = _deploy(alice, staging, service, writer, 1, tags={"demo.fail": "load"})
    assert rollout.follow_rollouts(reader=demo, writer=writer) == [(bad.pk, "waiting")]
    bad.refresh_from_db()
    # The serving object's own reason comes first, then Argo CD's verdict.
    assert bad.status_message.startswith("model failed to load: ModelLoadFailed")
    assert "Degraded" in bad.status_message


def test_demo_fault_reads_the_tag_and_ignores_junk(alice, staging, service, writer):
    release = _deploy(alice, staging, service, writer, 1, tags={"demo.fail": " Sync "})
    assert demo_fault(str(release.uid)) == "sync"
    assert demo_fault("not-a-uuid") == ""
    assert demo_fault("00000000-0000-0000-0000-000000000000") == ""
