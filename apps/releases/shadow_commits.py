"""The commits of shadow evaluations: the start (the live release's files plus the
candidate on a mirrored share) and the end (the live release's own files, byte for
byte as they were committed for it).

Made by the deployer under the repository writer lock (``rollout_commit_pending`` calls
``shadow_commit_pending`` while it holds it), after checking the folder is still the live
release's: a deploy, rollback or drift restore of the target commits under the same lock
and ends the evaluation first (``deploy._deploy_one``), so an evaluation commit never
lands over a newer release and a deploy never waits for an end commit.

Each commit carries the candidate's ``Release-Id`` (so a reader of the history sees
which release was evaluated), ``Rollout-Step: shadow-evaluation`` (or
``shadow-evaluation-end``) and ``Step-Key: <release id>/shadow-evaluation`` (a second run
of the same release adds ``-2``...): a worker killed between the push and the database
write makes the same commit again, and the git writer finds it by that key.
"""

from __future__ import annotations

import logging

from apps.core.failpoints import failpoint
from apps.gitops.errors import GitOpsError
from apps.gitops.validate import secret_findings, validate_manifests
from apps.releases import services
from apps.releases.commit_files import release_commit_files
from apps.releases.models import (
    SHADOW_END,
    SHADOW_START,
    Release,
    ReleaseState,
    ShadowEvaluation,
)
from apps.releases.rendering import control_plane_secrets, release_expected_digest

log = logging.getLogger(__name__)


def shadow_commit_pending(writer, *, since) -> list[tuple[int, str, str]]:
    """Make every decided evaluation commit; caller holds the repository writer lock.
    Returns (evaluation id, "start"/"end", sha) for each commit made or found."""
    done = []
    for evaluation in ShadowEvaluation.objects.exclude(pending="").order_by("pk"):
        made = _commit_one(writer, evaluation, since=since)
        if made is not None:
            done.append((evaluation.pk, *made))
    return done


def _commit_one(writer, evaluation: ShadowEvaluation, *, since) -> tuple[str, str] | None:
    evaluation = ShadowEvaluation.objects.select_related(
        "release__service",
        "release__environment",
        "release__model_version",
        "release__service__owner_team",
        "live__model_version",
        "live__service__owner_team",
        "started_by",
    ).get(pk=evaluation.pk)
    name = evaluation.pending
    if not name:
        return None
    release = evaluation.release
    why = _folder_moved(evaluation)
    if why:
        services.shadow_evaluation_end_without_commit(evaluation=evaluation, why=why)
        return None
    if name == SHADOW_START and release.state != ReleaseState.PENDING_APPROVAL:
        # Rejected or cancelled before the start was recorded: nothing to mirror any more.
        # A dead worker may have pushed the start already, so the end is committed
        # instead (the live release's own files; a no-op if the start never landed).
        services.shadow_decide_end(
            evaluation=evaluation,
            why=f"not started: release #{release.pk} is {release.get_state_display().lower()}",
        )
        return _commit_one(writer, evaluation, since=since)
    try:
        files, message, trailers = shadow_commit(evaluation, name)
        _refuse_unsafe(evaluation, files, "\n".join([message, *trailers.values()]))
    except GitOpsError as exc:
        why = (
            f"not started: {exc}"
            if name == SHADOW_START
            else f"the end commit was refused ({exc}); the folder still holds the "
            "evaluation's files: restore the live release's approved files from its page"
        )
        services.shadow_evaluation_end_without_commit(evaluation=evaluation, why=why)
        return None
    step = evaluation.step_name if name == SHADOW_START else evaluation.end_step_name
    outcome = writer.commit_release(
        environment=release.environment.name,
        service=release.service.name,
        files=files,
        message=message,
        trailers=trailers,
        since=since(evaluation),
        step_key=f"{release.uid}/{step}",
    )
    failpoint("shadow.after_push")  # crash tests: on the remote, not in the database
    services.shadow_record_commit(evaluation=evaluation, name=name, commit_sha=outcome.sha)
    log.info(
        "shadow evaluation %s of release %s: %s committed as %s",
        evaluation.run,
        release.pk,
        name,
        outcome.sha,
    )
    return name, outcome.sha


def _folder_moved(evaluation: ShadowEvaluation) -> str | None:
    """Why the target's folder is no longer the live release's to change: it went
    out of live (a rollback or newer release replaced it), or a release of the target
    is deploying (its commit replaced the folder; _deploy_one ends evaluations too)."""
    live = Release.objects.only("state").get(pk=evaluation.live_id)
    if live.state != ReleaseState.LIVE:
        return (
            f"ended: release #{evaluation.live_id} is no longer live; the release that "
            "replaced it put its own files in the folder, so no end commit is needed"
        )
    moving = (
        Release.objects.filter(
            service_id=evaluation.service_id,
            environment_id=evaluation.environment_id,
            state=ReleaseState.DEPLOYING,
        )
        .exclude(commit_sha="")
        .first()
    )
    if moving is not None:
        return (
            f"ended: release #{moving.pk} was committed to the folder; its files replaced "
            "the evaluation's, so no end commit is needed"
        )
    return None


def shadow_commit(evaluation: ShadowEvaluation, name: str):
    """The files, message and trailers of one evaluation commit."""
    release, live = evaluation.release, evaluation.live
    live_files = release_commit_files(live)
    label = f"{release.service.name} {release.environment.name}"
    if name == SHADOW_START:
        metadata = {k: v for k, v in live_files.items() if k not in live.rendered_files}
        files = {**evaluation.files, **metadata}
        subject = (
            f"{label}: shadow evaluation of #{release.pk} ({release.model_version.name} "
            f"v{release.model_version.version}), {evaluation.mirror_percent}% of requests "
            f"mirrored; v{live.model_version.version} keeps answering"
        )
        body = (
            f"Started by {evaluation.started_by_label}"
            + (f": {evaluation.reason}" if evaluation.reason else ".")
            + " Mirrored answers are recorded, never returned to a client."
        )
    else:
        files = live_files
        subject = (
            f"{label}: end the shadow evaluation of #{release.pk}, release #{live.pk}'s own "
            "files back"
        )
        body = evaluation.verdict_message or evaluation.stop_reason or evaluation.message
    trailers = {
        "Release-Id": str(release.uid),
        "Model-Version": f"{release.model_version.name}/{release.model_version.version}",
        "Requested-By": evaluation.started_by_label,
        "Rollout-Step": "shadow-evaluation" if name == SHADOW_START else "shadow-evaluation-end",
        "Rollout-Mirror-Percent": str(evaluation.mirror_percent),
        "Live-Release-Id": str(live.uid),
    }
    if name == SHADOW_END:
        trailers["Analysis-Verdict"] = evaluation.verdict or "none"
    body = " ".join(body.split())
    return files, (f"{subject}\n\n{body}" if body else subject), trailers


def _refuse_unsafe(evaluation: ShadowEvaluation, files, message: str) -> None:
    """The candidate's and the live release's stored manifests must still be what was
    rendered (and, for the live one, approved); the files and the message are scanned
    for secrets like every commit."""
    from apps.gitops.errors import ManifestError

    for release in (evaluation.release, evaluation.live):
        if release_expected_digest(release) != release.digest:
            raise ManifestError(
                [f"the stored manifests of release #{release.pk} no longer match its digest"]
            )
    forbidden = control_plane_secrets()
    validate_manifests(
        files,
        require_image_digest=evaluation.release.environment.is_production,
        forbidden_values=forbidden,
    )
    found = secret_findings(message, forbidden)
    if found:
        raise ManifestError([f"the commit message contains what looks like {f}" for f in found])
