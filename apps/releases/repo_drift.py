"""What runs is what was approved: on each status poll, the service folder at the
revision Argo CD synced is hashed with the digest approvals bind to
(``manifests_digest``) and compared with the live release's ``digest``.

A difference means someone changed ``environments/<env>/<service>/`` outside Slipway:
Argo CD syncs that commit while the pages would show the approved release. The verdict
is stored on the target (``ServiceEnvironment.drift_*``) by ``target_record_drift``.

Cost: a target is read again only when its synced revision or its live release's digest
changed since the last check (both are stored with the verdict), so an unchanged
revision starts no git process; a new one costs a few short git processes in the
working clone (and a fetch if the clone has not seen the revision yet).

Not checked while a release of the target is on its way (approved or deploying): the
folder then legitimately holds the incoming release's files, which are not live yet.
The check runs again once that release is live or failed. Nor while Argo CD has not yet
synced the abort commit of a progressive rollout (the synced revision is an ancestor of
it): the folder still holds the aborted step's files, which the abort replaces.

A shadow evaluation of a release waiting for approval puts its own files in the folder
(the live release's plus the mirrored candidate): while it runs, the folder matching
those files is no drift; after its end commit, the same rule as an abort applies until
Argo CD has synced the end (the live release's own files again).
"""

from __future__ import annotations

import logging

from apps.gitops.errors import GitOpsError
from apps.releases import services
from apps.releases.models import (
    RELEASE_IN_FLIGHT_STATES,
    SHADOW_ACTIVE_STATES,
    Release,
    ReleaseState,
    Rollout,
    ServiceEnvironment,
    ShadowEvaluation,
)

log = logging.getLogger(__name__)


def check_live_folders(*, writer) -> list[tuple[int, str]]:
    """Check every target with a live release whose folder may have changed since the
    last check. Returns (target id, outcome) pairs, outcome one of "cached" (nothing
    read), "clean", "drift" (a known change still there), "new" (a new change, audited)
    or "error" (git could not answer; tried again next poll)."""
    if writer is None:
        return []  # no GitOps repository configured: nothing to compare with
    live = {
        (r.service_id, r.environment_id): r
        for r in Release.objects.filter(state=ReleaseState.LIVE).only(
            "pk", "service_id", "environment_id", "digest", "rendered_files"
        )
    }
    moving = set(
        Release.objects.filter(state__in=RELEASE_IN_FLIGHT_STATES).values_list(
            "service_id", "environment_id"
        )
    )
    # The newest commit per target that puts the live release's files back after a
    # temporary state (a rollout's abort, a shadow evaluation's end): until Argo CD has
    # synced it, the folder legitimately holds what it replaces.
    restores: dict[tuple[int, int], tuple] = {}
    for ended_at, service_id, environment_id, sha in [
        *Rollout.objects.exclude(abort_commit_sha="").values_list(
            "ended_at", "release__service_id", "release__environment_id", "abort_commit_sha"
        ),
        *ShadowEvaluation.objects.exclude(end_commit_sha="").values_list(
            "ended_at", "service_id", "environment_id", "end_commit_sha"
        ),
    ]:
        key = (service_id, environment_id)
        if ended_at is not None and (key not in restores or restores[key][0] < ended_at):
            restores[key] = (ended_at, sha)
    aborts = {key: sha for key, (_, sha) in restores.items()}
    # The files of a running shadow evaluation are expected in its target's folder.
    shadowing = {
        (e.service_id, e.environment_id): e.files
        for e in ShadowEvaluation.objects.filter(state__in=SHADOW_ACTIVE_STATES).only(
            "service_id", "environment_id", "files"
        )
    }
    results = []
    for target in (
        ServiceEnvironment.objects.select_related("service", "environment")
        .exclude(synced_revision="")
        .order_by("pk")
    ):
        key = (target.service_id, target.environment_id)
        release = live.get(key)
        if release is None or key in moving:
            continue
        abort = aborts.get(key)
        if abort and _abort_not_synced(writer, target.synced_revision, abort):
            continue
        results.append((target.pk, _check_one(writer, target, release, shadow=shadowing.get(key))))
    return results


def _abort_not_synced(writer, revision: str, abort: str) -> bool:
    if revision == abort:
        return False
    try:
        return writer.is_ancestor(revision, abort)
    except GitOpsError:
        return False


def _check_one(writer, target: ServiceEnvironment, live: Release, shadow=None) -> str:
    revision = target.synced_revision
    if (target.drift_checked_revision, target.drift_checked_digest) == (revision, live.digest):
        return "cached"
    where = {"environment": target.environment.name, "service": target.service.name}
    try:
        found = writer.folder_files(revision, **where)
        differences = services.folder_differences(approved=live.rendered_files, found=found)
        if differences and shadow:
            # A running shadow evaluation's own files are expected there; anything else
            # is listed against what the evaluation put in the folder.
            differences = services.folder_differences(approved=shadow, found=found)
        change = writer.folder_last_change(revision, **where) if differences else None
    except GitOpsError as exc:
        log.warning("cannot check the folder of %s at %s: %s", target, revision[:12], exc)
        return "error"
    new = services.target_record_drift(
        target=target, live=live, revision=revision, differences=differences, change=change
    )
    if differences is None:
        return "clean"
    if new:
        log.warning("unapproved change in %s at %s: %s", target, revision[:12], differences)
    return "new" if new else "drift"
