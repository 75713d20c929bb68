"""Turning approved releases into commits on the GitOps repository.

``deploy_pending`` drains the queue: under the repository's writer lock it commits every
approved release, oldest approval first, each exactly once. Exactly once comes from the
Release-Id trailer: a redelivered task, or a worker killed after the push but before the
database write, finds the commit already on the remote and only records it. Order comes
from draining under the lock: whichever worker holds it commits everything pending, so
releases approved while the remote was down go out in approval order when it returns.

No database row lock is held during git I/O: each release is read, committed, and then
moved to ``deploying`` in its own short transaction.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings

from apps.gitops.errors import GitOpsError, ManifestError
from apps.gitops.git_writer import GitWriter
from apps.gitops.locks import repository_lock
from apps.gitops.render import manifests_digest, release_metadata_file
from apps.gitops.validate import validate_manifests
from apps.releases import services
from apps.releases.models import Release, ReleaseState
from controlplane.failpoints import failpoint

log = logging.getLogger(__name__)

# Commits older than this before a release's approval cannot carry its trailer; the
# duplicate check searches only newer history so it stays fast on long histories.
_TRAILER_SEARCH_SLACK = timedelta(days=1)


@dataclass(frozen=True)
class Deployed:
    release_id: int
    commit_sha: str
    created: bool


def control_plane_secrets() -> set[str]:
    """Values that must never appear in the GitOps repository."""
    candidates = [
        settings.SECRET_KEY,
        settings.AUDIT_CHAIN_KEY,
        settings.GITOPS_HTTPS_TOKEN,
        settings.ARGOCD_TOKEN,
        settings.KUBE_TOKEN,
        settings.DATABASES["default"].get("PASSWORD") or "",
    ]
    return {value for value in candidates if value and len(value) >= 8}


def next_approved_release() -> Release | None:
    return (
        Release.objects.select_related("service", "environment", "model_version", "requested_by")
        .prefetch_related("approvals__approver")
        .filter(state=ReleaseState.APPROVED)
        .order_by("approved_at", "pk")
        .first()
    )


def release_commit_files(release: Release) -> dict[str, str]:
    """The files committed for a release: its approved manifests plus the metadata file
    naming who asked and who approved."""
    approvers = sorted(
        a.approver.get_username() for a in release.approvals.all() if a.decision == "approve"
    )
    if release.break_glass:
        approvers.append(f"break-glass:{release.requester_label}")
    name, text = release_metadata_file(
        release_id=str(release.uid),
        kind=release.kind,
        model_name=release.model_version.name,
        model_version=release.model_version.version,
        requested_by=release.requester_label,
        approvers=approvers,
        reason=release.reason,
        rollback_of=str(release.rolled_back_release.uid)
        if release.rolled_back_release_id
        else None,
    )
    return {**release.rendered_files, name: text}


def release_commit_message(release: Release) -> tuple[str, dict[str, str]]:
    approvers = ", ".join(
        sorted(
            a.approver.get_username() for a in release.approvals.all() if a.decision == "approve"
        )
    ) or ("break-glass" if release.break_glass else "policy: none required")
    subject = (
        f"{release.service.name} {release.environment.name}: {release.model_version.name} "
        f"v{release.model_version.version} ({release.get_kind_display().lower()} #{release.pk})"
    )
    body = release.reason.strip()
    trailers = {
        "Release-Id": str(release.uid),
        "Model-Version": f"{release.model_version.name}/{release.model_version.version}",
        "Requested-By": release.requester_label,
        "Approved-By": approvers,
    }
    return (f"{subject}\n\n{body}" if body else subject), trailers


def _refuse_if_tampered(release: Release) -> None:
    """What is committed must be what was approved: recompute the digest of the stored
    manifests and scan them again for secrets before they leave the building."""
    if manifests_digest(release.rendered_files) != release.digest:
        raise ManifestError(["the stored manifests no longer match the approved digest"])
    validate_manifests(
        release.rendered_files,
        require_image_digest=release.environment.is_production,
        forbidden_values=control_plane_secrets(),
    )


def deploy_pending(*, writer: GitWriter | None = None) -> list[Deployed]:
    """Commit every approved release in approval order. Raises a retryable GitOpsError
    when the remote is unreachable; what was committed before that stays recorded."""
    if writer is None and not settings.GITOPS_REPO_URL:
        log.warning("approved releases wait: GITOPS_REPO_URL is not set")
        return []
    own_writer = writer is None
    writer = writer or GitWriter.from_settings(lock=contextlib.nullcontext)
    done: list[Deployed] = []
    try:
        with repository_lock(writer.remote.url):
            while (release := next_approved_release()) is not None:
                done.append(_deploy_one(writer, release))
    finally:
        if own_writer:
            writer.close()
    return done


def _deploy_one(writer: GitWriter, release: Release) -> Deployed:
    try:
        _refuse_if_tampered(release)
        files = release_commit_files(release)
    except GitOpsError as exc:
        services.release_mark_failed(release=release, message=f"Not committed: {exc}")
        return Deployed(release.pk, "", False)
    failpoint("deploy.after_render")
    message, trailers = release_commit_message(release)
    since = (release.approved_at or release.created_at) - _TRAILER_SEARCH_SLACK
    try:
        outcome = writer.commit_release(
            environment=release.environment.name,
            service=release.service.name,
            files=files,
            message=message,
            trailers=trailers,
            since=since,
        )
    except GitOpsError as exc:
        if getattr(exc, "retryable", False):
            services.release_note_status(release=release, message=f"Waiting to commit: {exc}")
            raise
        services.release_mark_failed(release=release, message=f"Not committed: {exc}")
        return Deployed(release.pk, "", False)
    failpoint("deploy.after_push")
    services.release_deploy_started(release=release, commit_sha=outcome.sha)
    failpoint("deploy.after_db")
    log.info(
        "release %s committed as %s (new commit: %s)", release.pk, outcome.sha, outcome.created
    )
    return Deployed(release.pk, outcome.sha, outcome.created)
