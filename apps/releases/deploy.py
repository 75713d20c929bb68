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

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings

from apps.audit.selectors import audit_anchor_head
from apps.core.errors import Conflict
from apps.core.failpoints import failpoint
from apps.gitops.argo import ArgoRefresher
from apps.gitops.errors import GitOpsError, ManifestError
from apps.gitops.git_writer import GitWriter
from apps.gitops.validate import secret_findings, validate_manifests
from apps.releases import selectors, services
from apps.releases.commit_files import release_commit_files
from apps.releases.models import (
    ABORT,
    ROLLOUT_FINAL_STATES,
    Release,
    ReleaseState,
    Rollout,
    ShadowEvaluation,
)
from apps.releases.rendering import control_plane_secrets, release_expected_digest
from apps.releases.shadow_commits import shadow_commit_pending

log = logging.getLogger(__name__)

# Commits older than this before a release's approval cannot carry its trailer; the
# duplicate check searches only newer history so it stays fast on long histories.
_TRAILER_SEARCH_SLACK = timedelta(days=1)


@dataclass(frozen=True)
class Deployed:
    release_id: int
    commit_sha: str
    created: bool
    application: str = ""  # the Argo CD Application: <service>-<environment>


def next_release_to_commit(*, exclude: set[int] | frozenset[int] = frozenset()) -> Release | None:
    """The oldest approved release, or a claimed one whose commit was never recorded
    (its worker died): both still need their commit, in approval order. ``exclude``: the
    ones this drain already looked at (a release held by a freeze stays approved)."""
    return (
        selectors.releases_awaiting_commit()
        .exclude(pk__in=exclude)
        .select_related(
            "service",
            "service__owner_team",
            "environment",
            "model_version",
            "requested_by",
            "rolled_back_release",
        )
        .prefetch_related("approvals__approver")
        .order_by("approved_at", "pk")
        .first()
    )


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
    # The audit chain's head, anchored where a database user cannot rewrite it
    # (docs/integrity.md): audit_verify holds the chain against these trailers.
    anchor = audit_anchor_head()
    if anchor is not None:
        trailers["Audit-Anchor"] = anchor
    return (f"{subject}\n\n{body}" if body else subject), trailers


def _refuse_if_tampered(release: Release, files: dict[str, str], message: str) -> None:
    """What is committed must be what was approved: recompute the digest of the stored
    manifests, and scan everything that would leave the building for secrets: the
    manifests, the metadata file and the commit message. (The last two carry the
    release's reason, which is free text; before, they went out unscanned: found by
    tests/hardening/test_security_gates.py.)"""
    if release_expected_digest(release) != release.digest:
        raise ManifestError(["the stored manifests no longer match the approved digest"])
    forbidden = control_plane_secrets()
    validate_manifests(
        files,
        require_image_digest=release.environment.is_production,
        forbidden_values=forbidden,
    )
    found = secret_findings(message, forbidden)
    if found:
        raise ManifestError([f"the commit message contains what looks like {f}" for f in found])


def deploy_pending(*, writer: GitWriter | None = None, refresher=None) -> list[Deployed]:
    """Commit every approved release in approval order. Raises a retryable GitOpsError
    when the remote is unreachable; what was committed before that stays recorded.

    After the lock is released, Argo CD is asked to refresh each application that got a
    commit (when ARGOCD_API_URL and ARGOCD_TOKEN are set), so the rollout starts now
    instead of at Argo CD's next poll of the repository.
    """
    if writer is None and not settings.GITOPS_REPO_URL:
        log.warning("approved releases wait: GITOPS_REPO_URL is not set")
        return []
    own_writer = writer is None
    writer = writer or GitWriter.from_settings()
    done: list[Deployed] = []
    try:
        with writer.hold_lock():
            seen: set[int] = set()
            while (release := next_release_to_commit(exclude=seen)) is not None:
                seen.add(release.pk)
                done.append(_deploy_one(writer, release))
    finally:
        if own_writer:
            writer.close()
        _refresh_applications(done, refresher or ArgoRefresher.from_settings())
    return done


def _end_shadow_evaluations(release: Release) -> None:
    """This commit replaces the target's folder: a shadow evaluation there ends with it
    (no end commit: this release's files are what the folder should hold now). Called
    under the writer lock right before the commit, once nothing can stop it any more
    but the remote, so no evaluation commit lands after it."""
    services.shadow_end_for_target(
        service_id=release.service_id,
        environment_id=release.environment_id,
        why=f"ended: release #{release.pk} ({release.get_kind_display().lower()}) was "
        "committed to the folder; its files replaced the evaluation's, so no end commit "
        "is needed",
    )


def _refresh_applications(done: list[Deployed], refresher) -> None:
    apps = {d.application for d in done if d.commit_sha}
    for app in sorted(apps):
        refresher.refresh(app)  # best effort: never raises, logs why it did not work


def _deploy_one(writer: GitWriter, release: Release) -> Deployed:
    if not services.release_deploy_claim(release=release):
        # Cancelled between the query and the claim, or held by a freeze.
        return Deployed(release.pk, "", False)
    if release.is_progressive:
        # The first step instead of the whole release; the step controller does the rest.
        rollout = Rollout.objects.get(release=release)
        return _commit_pending(writer, rollout) or Deployed(release.pk, "", False)
    try:
        files = release_commit_files(release)
        message, trailers = release_commit_message(release)
        _refuse_if_tampered(release, files, "\n".join([message, *trailers.values()]))
    except GitOpsError as exc:
        services.release_mark_failed(release=release, message=f"Not committed: {exc}")
        return Deployed(release.pk, "", False)
    failpoint("deploy.after_render")
    since = (release.approved_at or release.created_at) - _TRAILER_SEARCH_SLACK
    _end_shadow_evaluations(release)
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
    services.release_record_commit(release=release, commit_sha=outcome.sha)
    failpoint("deploy.after_db")
    log.info(
        "release %s committed as %s (new commit: %s)", release.pk, outcome.sha, outcome.created
    )
    return Deployed(
        release.pk,
        outcome.sha,
        outcome.created,
        f"{release.service.name}-{release.environment.name}",
    )


# --- progressive releases: one commit per step ------------------------------------------


def rollout_commit_pending(*, writer: GitWriter | None = None, refresher=None) -> list[Deployed]:
    """Make every commit a rollout decided (a step, a promotion, an abort), under the
    repository writer lock, so no release commit lands between the check that the
    release still deploys and its step's commit (a rollback clicked during a step wins:
    it supersedes the release, and the step is not committed over it). Rollouts whose
    release stopped deploying are ended here."""
    for rollout in Rollout.objects.exclude(state__in=ROLLOUT_FINAL_STATES).exclude(
        release__state=ReleaseState.DEPLOYING
    ):
        _end_orphan(rollout)
    if (
        not Rollout.objects.exclude(pending="").exists()
        and not ShadowEvaluation.objects.exclude(pending="").exists()
    ):
        return []
    if writer is None and not settings.GITOPS_REPO_URL:
        log.warning("rollout steps wait: GITOPS_REPO_URL is not set")
        return []
    own_writer = writer is None
    writer = writer or GitWriter.from_settings()
    done: list[Deployed] = []
    try:
        with writer.hold_lock():
            for rollout in Rollout.objects.exclude(pending="").order_by("pk"):
                made = _commit_pending(writer, rollout)
                if made is not None:
                    done.append(made)
            # Shadow evaluations' start and end commits, under the same lock.
            for evaluation_id, _name, sha in shadow_commit_pending(
                writer, since=lambda e: e.created_at - _TRAILER_SEARCH_SLACK
            ):
                evaluation = ShadowEvaluation.objects.select_related("service", "environment").get(
                    pk=evaluation_id
                )
                done.append(
                    Deployed(
                        evaluation.release_id,
                        sha,
                        True,
                        f"{evaluation.service.name}-{evaluation.environment.name}",
                    )
                )
    finally:
        if own_writer:
            writer.close()
        _refresh_applications(done, refresher or ArgoRefresher.from_settings())
    return done


def _end_orphan(rollout: Rollout) -> None:
    release = rollout.release
    services.rollout_end(
        rollout=rollout,
        why=f"ended: the release is {release.get_state_display().lower()}"
        + (f" ({release.status_message})" if release.status_message else ""),
    )


def _commit_pending(writer: GitWriter, rollout: Rollout) -> Deployed | None:
    """Make the rollout's pending commit (or find it, by its Step-Key) and record it.
    Caller holds the repository writer lock."""
    rollout.refresh_from_db()
    name = rollout.pending
    release = (
        Release.objects.select_related(
            "service", "environment", "model_version", "requested_by", "rollout_stable"
        )
        .prefetch_related("approvals__approver")
        .get(pk=rollout.release_id)
    )
    if not name:
        return None
    if release.state != ReleaseState.DEPLOYING:
        _end_orphan(rollout)
        return None
    try:
        files, message, trailers = rollout_commit(release, rollout, name)
        _refuse_if_tampered(release, files, "\n".join([message, *trailers.values()]))
    except GitOpsError as exc:
        services.rollout_end(rollout=rollout, why=f"Not committed: {exc}")
        services.release_mark_failed(release=release, message=f"Not committed: {exc}")
        return None
    since = (release.approved_at or release.created_at) - _TRAILER_SEARCH_SLACK
    _end_shadow_evaluations(release)
    try:
        outcome = writer.commit_release(
            environment=release.environment.name,
            service=release.service.name,
            files=files,
            message=message,
            trailers=trailers,
            since=since,
            step_key=f"{release.uid}/{name}",
        )
    except GitOpsError as exc:
        if getattr(exc, "retryable", False):
            services.rollout_note(rollout=rollout, message=f"Waiting to commit {name}: {exc}")
            raise
        services.rollout_end(rollout=rollout, why=f"Not committed: {exc}")
        services.release_mark_failed(release=release, message=f"Not committed: {exc}")
        return None
    failpoint("rollout.after_push")  # crash tests: on the remote, not in the database
    try:
        if name != ABORT:
            services.release_record_commit(release=release, commit_sha=outcome.sha)
        services.rollout_record_commit(rollout=rollout, name=name, commit_sha=outcome.sha)
    except Conflict:
        # Argo CD failed the release meanwhile (no repository lock for that): its restore
        # commit follows, and this rollout ends here instead of stopping the others.
        _end_orphan(rollout)
        return None
    log.info("rollout of release %s: %s committed as %s", release.pk, name, outcome.sha)
    return Deployed(
        release.pk,
        outcome.sha,
        outcome.created,
        f"{release.service.name}-{release.environment.name}",
    )


def rollout_commit(
    release: Release, rollout: Rollout, name: str
) -> tuple[dict[str, str], str, dict[str, str]]:
    """The files, message and trailers of one rollout commit: a step's approved files
    (the promotion is the release's own), or for an abort the stable release's files
    exactly as they were committed for it."""
    steps = services.rollout_steps_of(release)
    base_message, trailers = release_commit_message(release)
    metadata = {
        k: v for k, v in release_commit_files(release).items() if k not in release.rendered_files
    }
    if name == ABORT:
        stable = release.rollout_stable
        files = release_commit_files(stable)
        subject = (
            f"{release.service.name} {release.environment.name}: abort the rollout of "
            f"#{release.pk}, {stable.model_version.name} v{stable.model_version.version} "
            "back at 100%"
        )
        trailers.update(
            {"Rollout-Step": "abort", "Rollout-Weight": "0"},
        )
        body = rollout.abort_reason.strip()
    else:
        number = int(name.removeprefix("step-"))
        step = steps[number - 1]
        if step.is_promotion:
            files = release_commit_files(release)
        else:
            files = {**release.rollout_files[number - 1], **metadata}
        subject = (
            f"{base_message.splitlines()[0]}: step {number} of {len(steps)}, "
            f"{step.weight}%" + (f" (mirror {step.mirror_percent}%)" if step.mirror_percent else "")
        )
        trailers.update(
            {"Rollout-Step": f"{number}/{len(steps)}", "Rollout-Weight": str(step.weight)}
        )
        body = ""
    trailers["Analysis-Verdict"] = rollout.pending_verdict or "none"
    return files, (f"{subject}\n\n{body}" if body else subject), trailers
