"""What runs is what was approved: the status poll hashes the service folder at the
revision Argo CD synced and compares it with the live release's approved digest.

Real git (a bare remote and "someone else" pushing to it) and the Kubernetes API double
standing in for Argo CD's Application status."""

from __future__ import annotations

import subprocess

import pytest
from django.test import Client
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.gitops import git_writer
from apps.gitops.argo import ArgoStatusReader
from apps.gitops.render import manifests_digest
from apps.releases import rollout, services
from apps.releases.deploy import deploy_pending
from apps.releases.models import Release, ReleaseKind, ReleaseState, ServiceEnvironment
from tests import factories
from tests.fixtures.git import BRANCH, run_git

FOLDER = "environments/staging/churn-model"
APP = "churn-model-staging"


@pytest.fixture
def writer(gitops_remote, make_git_writer):
    return make_git_writer(gitops_remote.url)


@pytest.fixture
def reader(kube_api):
    return ArgoStatusReader(kube_api.api_client(), namespace="argocd", timeout=5)


@pytest.fixture
def poll(reader, writer):
    return lambda: rollout.follow_rollouts(reader=reader, writer=writer)


def _deploy_live(alice, staging, service, writer, kube_api, poll, version=1) -> Release:
    """Approve, commit, and let "Argo CD" sync it Healthy: the release is live."""
    mv = factories.make_model_version(service.registered_model, version)
    release, _ = services.release_create(
        actor=alice, service=service, environment=staging, model_version=mv, reason="ship"
    )
    release = services.release_submit(actor=alice, release=release)  # staging: no approval
    deploy_pending(writer=writer)
    release.refresh_from_db()
    kube_api.set_application(APP, sync="Synced", revision=release.commit_sha, health="Healthy")
    poll()
    release.refresh_from_db()
    assert release.state == ReleaseState.LIVE
    return release


def _push_as_someone_else(remote, changes: dict[str, str | None], message: str) -> str:
    """One commit by "Someone Else" writing (or, for None, deleting) files; its sha."""
    work = remote.clone()
    for path, text in changes.items():
        target = work / path
        if text is None:
            target.unlink()
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
    run_git("add", "-A", cwd=work, home=remote.scratch)
    run_git("commit", "-q", "-m", message, cwd=work, home=remote.scratch)
    run_git("push", "-q", "origin", f"HEAD:refs/heads/{BRANCH}", cwd=work, home=remote.scratch)
    return run_git("rev-parse", "HEAD", cwd=work, home=remote.scratch).stdout.decode().strip()


def _target(service, environment) -> ServiceEnvironment:
    return ServiceEnvironment.objects.get(service=service, environment=environment)


def _detections(release) -> int:
    return AuditEvent.objects.filter(
        action="release.unapproved_change", target_type="release", target_id=str(release.pk)
    ).count()


def _tamper(gitops_remote, live) -> tuple[str, str, str]:
    """Change one approved file and add one; returns (changed name, added name, sha)."""
    changed = sorted(name for name in live.rendered_files if name != "kustomization.yaml")[0]
    sha = _push_as_someone_else(
        gitops_remote,
        {
            f"{FOLDER}/{changed}": live.rendered_files[changed] + "# replicas bumped by hand\n",
            f"{FOLDER}/debug-shell.yaml": "apiVersion: v1\nkind: Pod\n",
        },
        "hotfix straight to the folder",
    )
    return changed, "debug-shell.yaml", sha


def test_an_unapproved_commit_is_detected_in_one_poll_audited_once_and_shown(
    alice, otto, staging, service, writer, kube_api, gitops_remote, poll
):
    live = _deploy_live(alice, staging, service, writer, kube_api, poll)
    assert not _target(service, staging).drifted
    changed, added, sha = _tamper(gitops_remote, live)
    kube_api.set_application(APP, sync="Synced", revision=sha, health="Healthy")

    poll()
    target = _target(service, staging)
    assert target.drift_revision == sha and target.drift_commit == sha
    assert target.drift_files == {"changed": [changed], "added": [added], "removed": []}
    assert "Someone Else" in target.drift_commit_summary
    assert "hotfix straight to the folder" in target.drift_commit_summary
    assert _detections(live) == 1
    event = AuditEvent.objects.get(action="release.unapproved_change")
    assert event.after["commit"] == sha and event.after["added"] == [added]

    # More polls, and an unrelated commit elsewhere that moves the synced revision: the
    # same unapproved change, so no second audit row.
    poll()
    elsewhere = gitops_remote.outside_commit("environments/prod/other/x.yaml", "a: 1\n", "other")
    kube_api.set_application(APP, sync="Synced", revision=elsewhere, health="Healthy")
    poll()
    poll()
    target = _target(service, staging)
    assert target.drift_revision == elsewhere and target.drift_commit == sha
    assert _detections(live) == 1

    # A second unapproved commit into the folder is a new change: audited once more.
    removed = sorted(live.rendered_files)[-1]
    again = _push_as_someone_else(gitops_remote, {f"{FOLDER}/{removed}": None}, "tidy up")
    kube_api.set_application(APP, sync="Synced", revision=again, health="Healthy")
    poll()
    target = _target(service, staging)
    assert target.drift_commit == again and target.drift_files["removed"] == [removed]
    assert _detections(live) == 2

    client = Client()
    client.force_login(otto)
    fleet = client.get(reverse("dashboards:fleet")).content.decode()
    assert "unapproved" in fleet and again[:12] in fleet and removed in fleet
    page = client.get(reverse("releases:detail", args=[live.pk])).content.decode()
    assert "Unapproved change" in page and again[:12] in page and removed in page
    assert changed in page and added in page
    assert "Restore the approved files" in page
    client.force_login(alice)  # an ML engineer sees the change but gets no button
    page = client.get(reverse("releases:detail", args=[live.pk])).content.decode()
    assert "Unapproved change" in page and "Restore the approved files" not in page


def test_restore_commits_the_approved_files_forward_and_the_drift_clears(
    alice, otto, staging, service, writer, kube_api, gitops_remote, poll
):
    live = _deploy_live(alice, staging, service, writer, kube_api, poll)
    _, _, sha = _tamper(gitops_remote, live)
    kube_api.set_application(APP, sync="Synced", revision=sha, health="Healthy")
    poll()
    assert _target(service, staging).drifted

    client = Client()
    client.force_login(otto)
    url = reverse("releases:restore", args=[live.pk])
    response = client.post(url, {"reason": "", "expected_revision": sha})
    assert response.status_code == 302
    assert not Release.objects.filter(kind=ReleaseKind.ROLLBACK).exists()  # reason required
    stale = client.post(url, {"reason": "unreviewed push", "expected_revision": "f" * 40})
    assert stale.status_code == 302
    assert not Release.objects.filter(kind=ReleaseKind.ROLLBACK).exists()  # page was stale

    client.post(url, {"reason": "unreviewed push to staging", "expected_revision": sha})
    restore = Release.objects.get(kind=ReleaseKind.ROLLBACK)
    assert restore.state == ReleaseState.APPROVED and restore.break_glass
    assert restore.rollback_target_id == live.pk and restore.digest == live.digest
    assert restore.requested_by == otto
    client.post(url, {"reason": "again", "expected_revision": sha})  # a double click
    assert Release.objects.filter(kind=ReleaseKind.ROLLBACK).count() == 1
    audit = AuditEvent.objects.get(action="release.restore_approved")
    assert audit.after["over_commit"] == sha and audit.actor_label == otto.username

    deploy_pending(writer=writer)
    restore.refresh_from_db()
    assert restore.commit_sha and restore.commit_sha != sha
    ancestor = gitops_remote.git(
        "merge-base", "--is-ancestor", sha, restore.commit_sha, check=False
    )
    assert ancestor.returncode == 0  # a forward commit on top of the unapproved one
    files = gitops_remote.files_at(FOLDER)
    assert "debug-shell.yaml" not in files
    assert manifests_digest(files) == live.digest

    kube_api.set_application(APP, sync="Synced", revision=restore.commit_sha, health="Healthy")
    poll()
    restore.refresh_from_db()
    live.refresh_from_db()
    assert (restore.state, live.state) == (ReleaseState.LIVE, ReleaseState.SUPERSEDED)
    target = _target(service, staging)
    assert not target.drifted and target.drift_files == {}
    assert target.drift_checked_revision == restore.commit_sha
    assert AuditEvent.objects.filter(action="release.unapproved_change_cleared").count() == 1
    page = client.get(reverse("releases:detail", args=[restore.pk])).content.decode()
    assert "Unapproved change" not in page and "Restores the approved manifests" in page


def test_a_commit_outside_the_folder_is_not_drift(
    alice, staging, service, writer, kube_api, gitops_remote, poll
):
    live = _deploy_live(alice, staging, service, writer, kube_api, poll)
    for path in (
        "environments/prod/churn-model/kustomization.yaml",  # same service, other env
        "environments/staging/fraud-model/model.yaml",  # other service, same env
        "environments/staging/churn-model-v2/model.yaml",  # a folder whose name starts alike
    ):
        sha = gitops_remote.outside_commit(path, "kind: Nothing\n", f"touch {path}")
        kube_api.set_application(APP, sync="Synced", revision=sha, health="Healthy")
        poll()
        target = _target(service, staging)
        assert target.drift_checked_revision == sha and not target.drifted
    assert _detections(live) == 0


def test_our_own_release_commits_never_drift(
    alice, otto, staging, service, writer, reader, kube_api, gitops_remote, poll
):
    first = _deploy_live(alice, staging, service, writer, kube_api, poll, version=1)
    mv = factories.make_model_version(service.registered_model, 2)
    second, _ = services.release_create(
        actor=alice, service=service, environment=staging, model_version=mv, reason="v2"
    )
    services.release_submit(actor=alice, release=second)
    deploy_pending(writer=writer)
    second.refresh_from_db()
    # Argo CD already syncs v2's commit while v1 is still the live release: the folder
    # holds v2's (approved) files. Not a drift: v2 is on its way.
    kube_api.set_application(APP, sync="Synced", revision=second.commit_sha, health="Progressing")
    poll()
    assert not _target(service, staging).drifted
    kube_api.set_application(APP, sync="Synced", revision=second.commit_sha, health="Healthy")
    poll()
    second.refresh_from_db()
    assert second.state == ReleaseState.LIVE
    poll()
    assert _target(service, staging).drift_checked_revision == second.commit_sha
    rollback = services.release_rollback(
        actor=otto, service=service, environment=staging, reason="p95 doubled"
    )
    deploy_pending(writer=writer)
    rollback.refresh_from_db()
    kube_api.set_application(APP, sync="Synced", revision=rollback.commit_sha, health="Healthy")
    poll()
    poll()
    target = _target(service, staging)
    assert target.drift_checked_revision == rollback.commit_sha
    assert target.drift_checked_digest == first.digest
    assert not target.drifted
    assert not AuditEvent.objects.filter(action__startswith="release.unapproved_change").exists()


def test_an_unchanged_revision_starts_no_git_process(
    alice, staging, service, writer, kube_api, gitops_remote, poll, monkeypatch
):
    _deploy_live(alice, staging, service, writer, kube_api, poll)
    started = []
    real_popen = subprocess.Popen

    def counting_popen(args, *rest, **kwargs):
        started.append(args)
        return real_popen(args, *rest, **kwargs)

    monkeypatch.setattr(git_writer.subprocess, "Popen", counting_popen)
    poll()  # the revision was verified when the release went live (same poll)
    poll()
    assert started == []
    sha = gitops_remote.outside_commit("environments/prod/other/x.yaml", "a: 1\n", "other")
    kube_api.set_application(APP, sync="Synced", revision=sha, health="Healthy")
    poll()
    assert started, "a new revision is read"
    assert all(args[0] == "git" for args in started)
    started.clear()
    poll()
    assert started == []


def test_a_file_one_folder_down_or_a_link_counts(
    alice, staging, service, writer, kube_api, gitops_remote, poll
):
    """Argo CD may read more than the top level (directory recursion, Kustomize
    resources in subfolders): nothing under the folder is left out of the comparison."""
    live = _deploy_live(alice, staging, service, writer, kube_api, poll)
    work = gitops_remote.clone()
    (work / FOLDER / "extra").mkdir()
    (work / FOLDER / "extra" / "job.yaml").write_text("kind: Job\n")
    name = sorted(n for n in live.rendered_files if n != "kustomization.yaml")[0]
    (work / FOLDER / "linked.yaml").symlink_to(name)  # points at an approved file
    run_git("add", "-A", cwd=work, home=gitops_remote.scratch)
    run_git("commit", "-q", "-m", "nested", cwd=work, home=gitops_remote.scratch)
    run_git(
        "push", "-q", "origin", f"HEAD:refs/heads/{BRANCH}", cwd=work, home=gitops_remote.scratch
    )
    sha = run_git("rev-parse", "HEAD", cwd=work, home=gitops_remote.scratch).stdout.decode().strip()
    kube_api.set_application(APP, sync="Synced", revision=sha, health="Healthy")
    poll()
    target = _target(service, staging)
    assert target.drift_files == {
        "changed": [],
        "added": ["extra/job.yaml", "linked.yaml"],
        "removed": [],
    }
    assert _detections(live) == 1
