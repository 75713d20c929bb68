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
    # The ApplicationSet puts the Application in the owning team's AppProject from this.
    assert meta["team"] == service.owner_team.slug == "growth-ml"
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


# --- Argo CD's verdict as 3.x reports it, end to end through the kube double ------------
APP = "churn-model-staging"


def _deployed(alice, staging, service, writer, version=2):
    good = factories.live_release(service, staging, 1, requester=alice)
    release = _approved(alice, staging, service, version)
    deploy_pending(writer=writer)
    release.refresh_from_db()
    return good, release


def test_a_failed_sync_fails_at_once_with_argo_s_message_and_restores(
    alice, staging, service, writer, reader, kube_api, gitops_remote
):
    good, bad = _deployed(alice, staging, service, writer)
    kube_api.set_application(
        APP,
        sync="OutOfSync",
        revision=bad.commit_sha,
        health="Healthy",
        phase="Failed",
        message="one or more objects failed to apply, reason: admission webhook denied",
        resources=[
            {
                "group": "apps",
                "kind": "Deployment",
                "name": "churn-model",
                "status": "SyncFailed",
                "message": "resource quota exceeded: requests.cpu",
            }
        ],
    )
    # The very first poll, long before the 900 s timeout.
    assert rollout.follow_rollouts(reader=reader, writer=writer) == [(bad.pk, "failed")]
    bad.refresh_from_db()
    assert bad.state == ReleaseState.FAILED
    assert "admission webhook denied" in bad.status_message
    assert "Deployment/churn-model: resource quota exceeded" in bad.status_message
    restore = Release.objects.get(kind=ReleaseKind.ROLLBACK)
    assert restore.rollback_target_id == good.pk
    deploy_pending(writer=writer)
    assert _manifests(gitops_remote.files_at(FOLDER)) == good.rendered_files


def test_a_running_operation_waits_even_when_synced_and_healthy(
    alice, staging, service, writer, reader, kube_api
):
    _, release = _deployed(alice, staging, service, writer)
    kube_api.set_application(
        APP,
        sync="Synced",
        revision=release.commit_sha,
        health="Healthy",
        phase="Running",
        message="waiting for completion of hook batch/Job/smoke",
    )
    assert rollout.follow_rollouts(reader=reader, writer=writer) == [(release.pk, "waiting")]
    release.refresh_from_db()
    assert "operation Running" in release.status_message
    kube_api.set_application(
        APP, sync="Synced", revision=release.commit_sha, health="Healthy", phase="Succeeded"
    )
    assert rollout.follow_rollouts(reader=reader, writer=writer) == [(release.pk, "live")]


def test_suspended_waits_past_the_timeout_with_what_to_do(
    alice, staging, service, writer, reader, kube_api
):
    _, release = _deployed(alice, staging, service, writer)
    kube_api.set_application(
        APP,
        sync="Synced",
        revision=release.commit_sha,
        health="Suspended",
        phase="Succeeded",
        health_message="ScaledObject is paused",
    )
    much_later = timezone.now() + timedelta(hours=2)
    assert rollout.follow_rollouts(reader=reader, writer=writer, now=much_later) == [
        (release.pk, "waiting")
    ]
    release.refresh_from_db()
    assert release.state == ReleaseState.DEPLOYING
    assert release.status_message.startswith("paused")
    assert "ScaledObject is paused" in release.status_message
    assert "autoscaling.keda.sh/paused" in release.status_message


def test_degraded_on_the_previous_revision_waits(alice, staging, service, writer, reader, kube_api):
    good, release = _deployed(alice, staging, service, writer)
    previous = good.commit_sha or "0" * 40
    kube_api.set_application(
        APP,
        sync="OutOfSync",
        revision=previous,
        health="Degraded",
        phase="Succeeded",
        health_message="CrashLoopBackOff",
    )
    now = timezone.now()
    later = now + rollout.DEGRADED_GRACE + timedelta(seconds=30)
    for moment in (now, later):
        assert rollout.follow_rollouts(reader=reader, writer=writer, now=moment) == [
            (release.pk, "waiting")
        ]
    release.refresh_from_db()
    assert "previous revision" in release.status_message
    kube_api.set_application(
        APP, sync="Synced", revision=release.commit_sha, health="Healthy", phase="Succeeded"
    )
    assert rollout.follow_rollouts(reader=reader, writer=writer) == [(release.pk, "live")]


def test_an_old_failed_operation_does_not_fail_the_new_release(
    alice, staging, service, writer, reader, kube_api
):
    _, release = _deployed(alice, staging, service, writer)
    kube_api.set_application(
        APP,
        sync="OutOfSync",
        revision=release.commit_sha,
        health="Healthy",
        phase="Failed",
        operation_revision="1" * 40,  # an older commit's failed sync
        message="old failure",
    )
    assert rollout.follow_rollouts(reader=reader, writer=writer) == [(release.pk, "waiting")]


def test_a_multi_source_app_is_read_at_our_repository_s_revision(
    alice, staging, service, writer, kube_api, kube_api_client, gitops_remote
):
    _, release = _deployed(alice, staging, service, writer)
    reader = ArgoStatusReader(kube_api_client, repo_url=gitops_remote.url)
    sources = [
        {"repoURL": "https://charts.example.com", "chart": "base", "targetRevision": "1.0.0"},
        {"repoURL": gitops_remote.url, "path": FOLDER, "targetRevision": "main"},
    ]
    kube_api.set_application(
        APP,
        sync="Synced",
        health="Healthy",
        phase="Succeeded",
        sources=sources,
        revisions=["1.0.0", release.commit_sha],
    )
    assert rollout.follow_rollouts(reader=reader, writer=writer) == [(release.pk, "live")]


# --- the serving object's own word, where Argo CD's health says too little ---------------
def _runtime_service(name, runtime, config):
    return factories.make_service(name, runtime=runtime, default_config=config)


def _seldon_model(status, message, reason="", *, generation=1):
    return {
        "apiVersion": "mlops.seldon.io/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "fraud-model", "namespace": "staging", "generation": generation},
        "spec": {"storageUri": "gs://models/fraud/1"},
        "status": {
            "replicas": 1,
            "availableReplicas": 1 if status == "True" else 0,
            "conditions": [
                {"type": "ModelReady", "status": status, "message": message, "reason": reason},
                {"type": "Ready", "status": status, "message": message, "reason": reason},
            ],
        },
    }


def test_a_seldon_model_that_fails_to_load_says_why_and_is_not_live(
    alice, staging, writer, reader, kube_api
):
    from tests.fixtures.kube import SELDON_MODELS

    service = _runtime_service("fraud-model", "seldon", {"storage_uri": "gs://models/fraud/1"})
    release = _approved(alice, staging, service, 1)
    deploy_pending(writer=writer)
    release.refresh_from_db()
    assert release.state == ReleaseState.DEPLOYING, release.status_message
    # Without the Lua check Argo CD calls the Model Healthy as soon as it exists.
    kube_api.set_application(
        "fraud-model-staging",
        sync="Synced",
        revision=release.commit_sha,
        health="Healthy",
        phase="Succeeded",
    )
    why = "rpc error: code = Internal desc = failed to load model: No such file model.joblib"
    kube_api.put_object(SELDON_MODELS, _seldon_model("False", "ModelFailed", why))
    assert rollout.follow_rollouts(reader=reader, writer=writer) == [(release.pk, "waiting")]
    release.refresh_from_db()
    assert release.status_message.startswith(f"model failed to load: {why}")

    kube_api.put_object(SELDON_MODELS, _seldon_model("True", "ModelAvailable"))
    assert rollout.follow_rollouts(reader=reader, writer=writer) == [(release.pk, "live")]


def _job(name, release, *, state):
    conditions = []
    if state == "succeeded":
        conditions = [{"type": "Complete", "status": "True"}]
    elif state == "failed":
        conditions = [
            {
                "type": "Failed",
                "status": "True",
                "reason": "BackoffLimitExceeded",
                "message": "Job has reached the specified backoff limit",
            }
        ]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": "staging",
            "labels": {"slipway.io/release-id": str(release.uid)},
            "ownerReferences": [{"kind": "CronJob", "name": "nightly-scores"}],
            "creationTimestamp": "2026-12-02T03:00:00Z",
        },
        "status": {"conditions": conditions},
    }


BATCH_CONFIG = {
    "image": "registry.example.com/scorer@sha256:" + "b" * 64,
    "schedule": "0 3 * * *",
}


@pytest.mark.parametrize("outcome", ["succeeded", "failed"])
def test_a_batch_release_is_scheduled_until_its_first_job_finishes(
    alice, staging, writer, reader, kube_api, outcome
):
    from tests.fixtures.kube import JOBS

    service = _runtime_service("nightly-scores", "batch", BATCH_CONFIG)
    release = _approved(alice, staging, service, 1)
    deploy_pending(writer=writer)
    release.refresh_from_db()
    assert release.state == ReleaseState.DEPLOYING, release.status_message
    kube_api.set_application(
        "nightly-scores-staging",
        sync="Synced",
        revision=release.commit_sha,
        health="Healthy",  # Argo CD's CronJob check: healthy before it ever ran
        phase="Succeeded",
    )
    # A Job of another release (the previous revision) says nothing about this one.
    other = Release(uid="00000000-0000-0000-0000-000000000001")
    kube_api.put_object(JOBS, _job("nightly-scores-old", other, state="succeeded"))
    long_after = timezone.now() + timedelta(days=1)  # no timeout while scheduled
    assert rollout.follow_rollouts(reader=reader, writer=writer, now=long_after) == [
        (release.pk, "waiting")
    ]
    release.refresh_from_db()
    assert release.status_message.startswith("scheduled: CronJob nightly-scores is in place")

    kube_api.put_object(JOBS, _job("nightly-scores-29412", release, state="running"))
    assert rollout.follow_rollouts(reader=reader, writer=writer) == [(release.pk, "waiting")]
    release.refresh_from_db()
    assert release.status_message.startswith("scheduled: first run in progress")

    kube_api.put_object(JOBS, _job("nightly-scores-29412", release, state=outcome))
    expected = "live" if outcome == "succeeded" else "failed"
    assert rollout.follow_rollouts(reader=reader, writer=writer) == [(release.pk, expected)]
    release.refresh_from_db()
    if outcome == "failed":
        assert "first scoring run failed" in release.status_message
        assert "BackoffLimitExceeded" in release.status_message


def test_a_degraded_seldon_model_fails_with_the_controller_s_reason(
    alice, staging, writer, reader, kube_api
):
    from tests.fixtures.kube import SELDON_MODELS

    service = _runtime_service("fraud-model", "seldon", {"storage_uri": "gs://models/fraud/1"})
    release = _approved(alice, staging, service, 1)
    deploy_pending(writer=writer)
    release.refresh_from_db()
    # With the template's Lua check Argo CD says Degraded; 3.x may leave the app's
    # health message empty, so the reason comes from the Model itself.
    kube_api.set_application(
        "fraud-model-staging",
        sync="Synced",
        revision=release.commit_sha,
        health="Degraded",
        phase="Succeeded",
    )
    kube_api.put_object(SELDON_MODELS, _seldon_model("False", "ModelFailed", "no such file"))
    now = timezone.now()
    later = now + rollout.DEGRADED_GRACE + timedelta(seconds=1)
    assert rollout.follow_rollouts(reader=reader, writer=writer, now=now) == [
        (release.pk, "waiting")
    ]
    assert rollout.follow_rollouts(reader=reader, writer=writer, now=later) == [
        (release.pk, "failed")
    ]
    release.refresh_from_db()
    assert release.status_message.startswith("model failed to load: no such file; ")
    assert "Argo CD reports Degraded" in release.status_message
