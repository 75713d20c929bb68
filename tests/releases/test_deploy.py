"""From approval to live against real git (bare repositories) and the Kubernetes API
double holding Argo CD Applications, through the same functions the tasks call."""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.gitops.argo import ArgoStatusReader
from apps.gitops.errors import GitRemoteUnavailable
from apps.gitops.render import METADATA_FILE
from apps.registry.models import AliasUpdate
from apps.releases import rollout, services
from apps.releases.deploy import deploy_pending
from apps.releases.models import Release, ReleaseKind, ReleaseState
from tests import factories

FOLDER = "environments/staging/churn-model"


@pytest.fixture
def writer(gitops_remote, make_git_writer):
    return make_git_writer(gitops_remote.url)


@pytest.fixture
def reader(kube_api):
    return ArgoStatusReader(kube_api.api_client(), namespace="argocd", timeout=5)


def _approved(alice, staging, service, version, reason="ship"):
    return factories.approved_release(service, staging, version, requester=alice, reason=reason)


def _manifests(files):
    return {name: text for name, text in files.items() if name != METADATA_FILE}


def test_approved_releases_are_committed_in_order_once_each(
    alice, staging, service, writer, gitops_remote
):
    first = _approved(alice, staging, service, 1)
    second = _approved(alice, staging, service, 2)
    before = gitops_remote.commit_count()
    done = deploy_pending(writer=writer)
    assert [d.release_id for d in done] == [first.pk, second.pk]
    assert gitops_remote.commit_count() == before + 2
    messages = gitops_remote.messages()
    assert f"Release-Id: {second.uid}" in messages[0] and f"Release-Id: {first.uid}" in messages[1]
    assert "Model-Version: churn-model/2" in messages[0]
    assert "Requested-By: alice" in messages[0]
    first.refresh_from_db()
    second.refresh_from_db()
    # The second commit replaced the first's files before it went live.
    assert first.state == ReleaseState.SUPERSEDED
    assert second.state == ReleaseState.DEPLOYING and len(second.commit_sha) == 40
    files = gitops_remote.files_at(FOLDER)
    assert _manifests(files) == second.rendered_files
    meta = json.loads(files[METADATA_FILE])
    assert meta["release_id"] == str(second.uid) and meta["requested_by"] == "alice"
    # Running the drain again (a redelivered task) commits nothing.
    assert deploy_pending(writer=writer) == []
    assert gitops_remote.commit_count() == before + 2


def test_worker_killed_after_push_before_the_database_write_commits_once(
    alice, staging, service, writer, gitops_remote
):
    release = _approved(alice, staging, service, 1)
    services.release_deploy_claim(release=release)
    message = f"outside\n\nRelease-Id: {release.uid}\n"
    # The push happened (commit with the trailer is on the remote), the DB never heard.
    clone = gitops_remote.clone()
    (clone / FOLDER).mkdir(parents=True, exist_ok=True)
    for name, text in release.rendered_files.items():
        (clone / FOLDER / name).write_text(text)
    subprocess.run(["git", "-C", str(clone), "add", "-A"], check=True)
    subprocess.run(
        [
            "git",
            "-C",
            str(clone),
            "-c",
            "user.name=x",
            "-c",
            "user.email=x@x",
            "commit",
            "-qm",
            message,
        ],
        check=True,
    )
    subprocess.run(["git", "-C", str(clone), "push", "-q", "origin", "HEAD:main"], check=True)
    pushed = gitops_remote.head()
    before = gitops_remote.commit_count()
    done = deploy_pending(writer=writer)
    assert done[0].commit_sha == pushed and not done[0].created
    assert gitops_remote.commit_count() == before
    release.refresh_from_db()
    assert release.state == ReleaseState.DEPLOYING and release.commit_sha == pushed


def test_a_remote_that_is_down_keeps_releases_waiting_then_commits_them_in_order(
    alice, staging, service, make_git_writer, gitops_remote, tmp_path
):
    moved = tmp_path / "moved.git"
    gitops_remote.path.rename(moved)
    writer = make_git_writer(gitops_remote.url)
    first = _approved(alice, staging, service, 1)
    second = _approved(alice, staging, service, 2)
    with pytest.raises(GitRemoteUnavailable):
        deploy_pending(writer=writer)
    first.refresh_from_db()
    assert first.state == ReleaseState.DEPLOYING and first.commit_sha == ""
    assert "Waiting to commit" in first.status_message
    moved.rename(gitops_remote.path)  # the remote is back
    done = deploy_pending(writer=writer)
    assert [d.release_id for d in done] == [first.pk, second.pk]
    trailers = [m.split("Release-Id: ")[1].split()[0] for m in gitops_remote.messages()[:2]]
    assert trailers == [str(second.uid), str(first.uid)]


def test_manifests_edited_in_the_database_are_not_committed(
    alice, staging, service, writer, gitops_remote
):
    release = _approved(alice, staging, service, 1)
    tampered = dict(release.rendered_files)
    tampered["deployment.yaml"] += "# sneaky\n"
    Release.objects.filter(pk=release.pk).update(rendered_files=tampered)
    before = gitops_remote.commit_count()
    deploy_pending(writer=writer)
    release.refresh_from_db()
    assert release.state == ReleaseState.FAILED
    assert "no longer match the approved digest" in release.status_message
    assert gitops_remote.commit_count() == before


def test_a_planted_secret_blocks_the_push(alice, staging, service, writer, gitops_remote, settings):
    """An attacker with database access plants the control plane's secret key in the
    manifests and fixes up the digest: the push is still refused."""
    from apps.gitops.render import manifests_digest

    release = _approved(alice, staging, service, 1)
    planted = dict(release.rendered_files)
    planted["deployment.yaml"] += f"# {settings.SECRET_KEY}\n"
    Release.objects.filter(pk=release.pk).update(
        rendered_files=planted, digest=manifests_digest(planted)
    )
    before = gitops_remote.commit_count()
    deploy_pending(writer=writer)
    release.refresh_from_db()
    assert release.state == ReleaseState.FAILED
    assert gitops_remote.commit_count() == before
    assert settings.SECRET_KEY not in release.status_message


def test_the_secret_key_in_a_config_value_is_refused_at_creation(
    alice, staging, service, model_versions, settings
):
    from apps.core.errors import DomainError

    with pytest.raises(DomainError):
        services.release_create(
            actor=alice,
            service=service,
            environment=staging,
            model_version=model_versions[0],
            config_overrides={"env": {"TOKEN": settings.SECRET_KEY}},
        )
    assert not Release.objects.exists()


def test_argo_status_moves_a_release_to_live(alice, staging, service, writer, reader, kube_api):
    old = factories.live_release(service, staging, 1, requester=alice)
    release = _approved(alice, staging, service, 2)
    deploy_pending(writer=writer)
    release.refresh_from_db()
    app = "churn-model-staging"

    assert rollout.follow_rollouts(reader=reader, writer=writer) == [(release.pk, "waiting")]
    release.refresh_from_db()
    assert "waiting for Argo CD to create application" in release.status_message

    kube_api.set_application(app, sync="OutOfSync", revision="0" * 40, health="Healthy")
    assert rollout.follow_rollouts(reader=reader, writer=writer) == [(release.pk, "waiting")]

    kube_api.set_application(app, sync="Synced", revision=release.commit_sha, health="Progressing")
    assert rollout.follow_rollouts(reader=reader, writer=writer) == [(release.pk, "waiting")]

    kube_api.set_application(app, sync="Synced", revision=release.commit_sha, health="Healthy")
    assert rollout.follow_rollouts(reader=reader, writer=writer) == [(release.pk, "live")]
    release.refresh_from_db()
    old.refresh_from_db()
    assert (release.state, old.state) == (ReleaseState.LIVE, ReleaseState.SUPERSEDED)
    alias = AliasUpdate.objects.get(release_uid=str(release.uid))
    assert alias.alias == "staging" and alias.model_version_id == release.model_version_id
    target = release.service.targets.get(environment=staging)
    assert (target.sync_status, target.health_status) == ("Synced", "Healthy")


def test_a_descendant_revision_counts_as_deployed(
    alice, staging, service, writer, reader, kube_api, gitops_remote
):
    release = _approved(alice, staging, service, 1)
    deploy_pending(writer=writer)
    release.refresh_from_db()
    later = gitops_remote.outside_commit("environments/prod/other/x.yaml", "a: 1\n", "unrelated")
    kube_api.set_application("churn-model-staging", sync="Synced", revision=later, health="Healthy")
    assert rollout.follow_rollouts(reader=reader, writer=writer) == [(release.pk, "live")]


def test_degraded_past_the_grace_fails_and_restores_the_live_release(
    alice, staging, service, writer, reader, kube_api, gitops_remote
):
    good = factories.live_release(service, staging, 1, requester=alice)
    bad = _approved(alice, staging, service, 2)
    deploy_pending(writer=writer)
    bad.refresh_from_db()
    kube_api.set_application(
        "churn-model-staging",
        sync="Synced",
        revision=bad.commit_sha,
        health="Degraded",
        health_message="CrashLoopBackOff",
    )
    now = timezone.now()
    assert rollout.follow_rollouts(reader=reader, writer=writer, now=now) == [(bad.pk, "waiting")]
    later = now + rollout.DEGRADED_GRACE + timedelta(seconds=1)
    assert rollout.follow_rollouts(reader=reader, writer=writer, now=later) == [(bad.pk, "failed")]
    bad.refresh_from_db()
    assert bad.state == ReleaseState.FAILED and "Degraded" in bad.status_message
    restore = Release.objects.get(kind=ReleaseKind.ROLLBACK)
    assert restore.rollback_target_id == good.pk and restore.state == ReleaseState.APPROVED
    deploy_pending(writer=writer)
    assert _manifests(gitops_remote.files_at(FOLDER)) == good.rendered_files
    good.refresh_from_db()
    assert good.state == ReleaseState.LIVE  # still live until the restore is


def test_rollback_commits_the_older_files_again_moving_history_forward(
    alice, otto, staging, service, writer, reader, kube_api, gitops_remote
):
    app = "churn-model-staging"
    releases = []
    for version in (1, 2):
        release = _approved(alice, staging, service, version)
        deploy_pending(writer=writer)
        release.refresh_from_db()
        kube_api.set_application(app, sync="Synced", revision=release.commit_sha, health="Healthy")
        rollout.follow_rollouts(reader=reader, writer=writer)
        releases.append(release)
    good, bad = releases
    head_before = gitops_remote.head()
    rollback = services.release_rollback(
        actor=otto, service=service, environment=staging, reason="p95 doubled"
    )
    deploy_pending(writer=writer)
    rollback.refresh_from_db()
    assert (
        gitops_remote.git(
            "merge-base", "--is-ancestor", head_before, rollback.commit_sha, check=False
        ).returncode
        == 0
    )
    assert _manifests(gitops_remote.files_at(FOLDER)) == good.rendered_files
    meta = json.loads(gitops_remote.files_at(FOLDER)[METADATA_FILE])
    assert meta["kind"] == "rollback" and meta["rollback_of"] == str(bad.uid)
    kube_api.set_application(app, sync="Synced", revision=rollback.commit_sha, health="Healthy")
    rollout.follow_rollouts(reader=reader, writer=writer)
    bad.refresh_from_db()
    rollback.refresh_from_db()
    assert (rollback.state, bad.state) == (ReleaseState.LIVE, ReleaseState.ROLLED_BACK)
    moved = AliasUpdate.objects.filter(release_uid=str(rollback.uid)).get()
    assert moved.model_version_id == good.model_version_id


def test_argo_cd_is_asked_to_refresh_after_the_push(alice, staging, service, writer):
    """A real HTTP server stands in for Argo CD's API; the request it gets is checked."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from apps.gitops.argo import ArgoRefresher

    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append((self.path, self.headers.get("Authorization")))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        refresher = ArgoRefresher(f"http://127.0.0.1:{server.server_port}", "argo-token", timeout=5)
        _approved(alice, staging, service, 1)
        deploy_pending(writer=writer, refresher=refresher)
    finally:
        server.shutdown()
    assert seen == [
        ("/api/v1/applications/churn-model-staging?refresh=normal", "Bearer argo-token")
    ]


def test_a_claimed_release_without_a_commit_is_not_followed(
    alice, staging, service, reader, kube_api
):
    release = _approved(alice, staging, service, 1)
    services.release_deploy_claim(release=release)
    kube_api.set_application(
        "churn-model-staging", sync="Synced", revision="a" * 40, health="Healthy"
    )
    assert rollout.follow_rollouts(reader=reader) == []
    release.refresh_from_db()
    assert release.state == ReleaseState.DEPLOYING
