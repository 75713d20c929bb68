"""Repository drift: the service folder Argo CD syncs no longer holds the files the live
release's approvers signed (someone pushed into it directly). Record the verdict of each
check on the target, audit each new unapproved change once, and restore the approved
files with a forward commit (a rollback-kind release carrying the live release's own
manifests, approved by on-call's written reason).

"Drift" here is about the repository, not the data drift (PSI) of apps.metrics.
"""

from __future__ import annotations

from collections.abc import Mapping

from django.db import IntegrityError
from django.utils import timezone

from apps.audit.services import audit_record, audited_atomic
from apps.core.errors import Conflict, DomainError, Forbidden
from apps.gitops.git_writer import FolderChange
from apps.gitops.render import METADATA_FILE, manifests_digest
from apps.releases import permissions
from apps.releases.models import Release, ReleaseKind, ReleaseState, ServiceEnvironment
from apps.releases.services._transitions import _committed_text
from apps.releases.services.rollback import (
    _lock_live,
    _refuse_second_rollback,
    _rollback_conflict,
    _submit_rollback,
)

# How many file names one verdict keeps per list (a folder replaced wholesale would
# otherwise put hundreds of names on the fleet page and in the audit row).
MAX_LISTED_FILES = 50


def folder_differences(*, approved: Mapping[str, str], found: Mapping[str, str]) -> dict | None:
    """Which files of ``found`` (read from the repository) differ from ``approved`` (the
    live release's manifests), compared with the digest the approvals bind to. None when
    the digests are equal. The metadata file is not part of the approval, so it is left
    out on both sides, as ``manifests_digest`` does."""
    if manifests_digest(found) == manifests_digest(approved):
        return None
    approved = {k: v for k, v in approved.items() if k != METADATA_FILE}
    found = {k: v for k, v in found.items() if k != METADATA_FILE}
    return {
        "changed": sorted(n for n in approved.keys() & found.keys() if approved[n] != found[n])[
            :MAX_LISTED_FILES
        ],
        "added": sorted(found.keys() - approved.keys())[:MAX_LISTED_FILES],
        "removed": sorted(approved.keys() - found.keys())[:MAX_LISTED_FILES],
    }


@audited_atomic
def target_record_drift(
    *,
    target: ServiceEnvironment,
    live: Release,
    revision: str,
    differences: dict | None,
    change: FolderChange | None = None,
) -> bool:
    """Store the verdict of one check of ``target``'s folder at ``revision`` against the
    live release. An unapproved change is audited once, when it is new (another commit
    into the folder, or other files), not on every poll; its end (the folder matches
    again) is audited once too. Returns True when this call recorded a new change."""
    target = ServiceEnvironment.objects.select_for_update().get(pk=target.pk)
    checked = {"drift_checked_revision": revision[:64], "drift_checked_digest": live.digest}
    if differences is None:
        if target.drift_revision:
            audit_record(
                system_actor="drift-check",
                action="release.unapproved_change_cleared",
                target_type="release",
                target_id=live.pk,
                before={"revision": target.drift_revision, "commit": target.drift_commit},
                after={"revision": revision, "digest": live.digest},
            )
        _update(
            target,
            **checked,
            drift_revision="",
            drift_commit="",
            drift_commit_summary="",
            drift_files={},
            drift_detected_at=None,
        )
        return False
    commit = change.sha if change else revision
    summary = f"{change.author}: {change.subject}"[:300] if change else ""
    new = not target.drift_revision or (target.drift_commit, target.drift_files) != (
        commit,
        differences,
    )
    fields = {
        **checked,
        "drift_revision": revision[:64],
        "drift_commit": commit[:64],
        "drift_commit_summary": summary,
        "drift_files": differences,
    }
    if new:
        fields["drift_detected_at"] = timezone.now()
        audit_record(
            system_actor="drift-check",
            action="release.unapproved_change",
            target_type="release",
            target_id=live.pk,
            after={
                "revision": revision,
                "commit": commit,
                "commit_by": summary,
                "approved_digest": live.digest,
                **differences,
            },
        )
    _update(target, **fields)
    return new


def _update(target: ServiceEnvironment, **fields) -> None:
    ServiceEnvironment.objects.filter(pk=target.pk).update(**fields)


def release_restore_approved(
    *, live: Release, reason: str, actor, expected_revision: str = ""
) -> Release:
    """Commit the live release's approved files again over an unapproved change in its
    folder: a new release of kind ``rollback`` whose target is the live release itself
    (same manifests, same digest), approved at once by on-call's or an admin's written
    reason (break-glass, audited) and deployed like any rollback. It goes live in place
    of ``live``, which becomes superseded, not rolled back: nothing was wrong with it.

    Refused when nothing differs, when ``live`` is no longer live, when the page showed
    another change than the one recorded now (``expected_revision``), and while another
    rollback of the target is under way (the same one-at-a-time rule as rollback).
    """
    if not permissions.can_rollback(actor):
        raise Forbidden("Only on-call staff and admins restore the approved files.")
    if not permissions.can_rollback(actor, live.service):
        raise Forbidden(permissions.other_team_refusal(live.service, "on call"))
    reason = _committed_text(reason, field="reason")
    if not reason:
        raise DomainError(
            "Say why you restore; it goes in the audit log and the commit.",
            field_errors={"reason": ["required"]},
        )
    service, environment = live.service, live.environment
    try:
        with audited_atomic():
            return _restore_locked(
                live=live, reason=reason, actor=actor, expected_revision=expected_revision
            )
    except IntegrityError:
        raise _rollback_conflict(service, environment) from None


def _restore_locked(*, live: Release, reason: str, actor, expected_revision: str) -> Release:
    service, environment = live.service, live.environment
    live = _lock_live(service=service, environment=environment, expected_live=live)
    _refuse_second_rollback(service=service, environment=environment)
    target = ServiceEnvironment.objects.filter(service=service, environment=environment).first()
    if target is None or not target.drift_revision:
        raise Conflict(
            f"The folder of {service.name} in {environment.name} matches the approved files "
            "of the live release; there is nothing to restore."
        )
    if expected_revision and expected_revision != target.drift_revision:
        raise Conflict(
            f"The repository changed again (now {target.drift_revision[:12]}) since you "
            "opened the page; reload and check before restoring."
        )
    now = timezone.now()
    restore = Release.objects.create(
        service=service,
        environment=environment,
        model_version=live.model_version,
        config_overrides=live.config_overrides,
        config=live.config,
        rendered_files=live.rendered_files,
        digest=live.digest,
        kind=ReleaseKind.ROLLBACK,
        state=ReleaseState.DRAFT,
        requested_by=actor,
        reason=reason,
        rollback_target=live,
        break_glass=True,
    )
    audit_record(
        actor=actor,
        action="release.restore_approved",
        target_type="release",
        target_id=restore.pk,
        after={
            "state": "draft",
            "restores": live.pk,
            "digest": live.digest,
            "over_revision": target.drift_revision,
            "over_commit": target.drift_commit,
            "files": target.drift_files,
            "reason": reason,
        },
    )
    _submit_rollback(
        rollback=restore,
        reason=reason,
        actor=actor,
        system_actor=None,
        break_glass=True,
        now=now,
    )
    return restore
