"""Deployment progress, driven by the deploy and status tasks: claim an approved release,
record its commit, mark it live or failed (restoring the live release's files after a
failure), keep the latest status words, and hand the MLflow alias to the live version."""

from __future__ import annotations

from django.utils import timezone

from apps.audit.services import audit_record, audited_atomic
from apps.core.errors import Conflict
from apps.releases import queue as release_queue
from apps.releases.models import Release, ReleaseKind, ReleaseState, ServiceEnvironment
from apps.releases.services._transitions import LOCK, _check_transition, _locked, _move
from apps.releases.services.freeze import held_by_freeze, hold_message
from apps.releases.services.progressive import rollout_end_of, rollout_start


@audited_atomic
def release_deploy_claim(*, release: Release) -> bool:
    """Claim an approved release for the deployer before its commit is made:
    approved -> deploying. From here it can no longer be cancelled, so the files that
    reach the repository always belong to a release Slipway is deploying. Returns False
    when the release is not approved any more (cancelled meanwhile): skip it.
    A deploying release without a commit is picked up again by the next drain, so a
    worker that dies right after claiming loses nothing. Also False while a freeze holds
    the release (services/freeze.py).
    """
    release = _locked(release)
    if release.state == ReleaseState.DEPLOYING:
        return True
    if release.state != ReleaseState.APPROVED:
        return False
    # The freeze is checked here, at the commit, under the row lock and inside the drain
    # that holds the repository writer lock: a freeze that began after the approval holds
    # the release instead of slipping through. It stays approved; the next drain after
    # the freeze ends commits it.
    held = held_by_freeze(release)
    if held is not None:
        message = hold_message(held)
        if release.status_message != message:
            release.status_message = message
            release.save(update_fields=["status_message"])
            audit_record(
                system_actor="deployer",
                action="release.held",
                target_type="release",
                target_id=release.pk,
                after={"freezes": held.reasons, "until": held.until_text},
            )
        return False
    if release.is_progressive and not _stable_still_live(release):
        # The steps were rendered (and approved) against a release that is no longer
        # live: committing them would bring back a version the target has left.
        _move(
            release,
            ReleaseState.FAILED,
            system_actor="deployer",
            action="release.failed",
            fields={
                "ended_at": timezone.now(),
                "status_message": f"Not committed: release #{release.rollout_stable_id}, "
                "which the rollout steps share traffic with, is no longer live. Create a "
                "new release, so reviewers approve steps against the version live now.",
            },
        )
        return False
    _move(
        release,
        ReleaseState.DEPLOYING,
        system_actor="deployer",
        action="release.deploying",
        fields={
            "deploy_started_at": timezone.now(),
            "status_message": "committing to the GitOps repository",
        },
    )
    if release.is_progressive:
        rollout_start(release=release)
    return True


def _stable_still_live(release: Release) -> bool:
    return Release.objects.filter(pk=release.rollout_stable_id, state=ReleaseState.LIVE).exists()


@audited_atomic
def release_record_commit(*, release: Release, commit_sha: str) -> Release:
    """Record the release's commit on the remote. Idempotent for a redelivered task.

    Any other release of the same target still deploying with an earlier commit can no
    longer go live (this commit replaced its files) and is superseded.
    """
    release = _locked(release)
    if release.state != ReleaseState.DEPLOYING:
        raise Conflict(
            f"Release #{release.pk} is {release.get_state_display().lower()}, "
            "not deploying; its commit cannot be recorded."
        )
    if release.commit_sha == commit_sha:
        return release
    now = timezone.now()
    for older in (
        Release.objects.select_for_update(**LOCK)
        .filter(
            service_id=release.service_id,
            environment_id=release.environment_id,
            state=ReleaseState.DEPLOYING,
        )
        .exclude(pk=release.pk)
        .exclude(commit_sha="")
        .order_by("pk")
    ):
        _move(
            older,
            ReleaseState.SUPERSEDED,
            system_actor="deployer",
            action="release.superseded",
            fields={
                "ended_at": now,
                "status_message": f"replaced by release #{release.pk} before it went live",
            },
            note={"by": release.pk},
        )
        rollout_end_of(older, why=f"ended: replaced by release #{release.pk}")
    release.commit_sha = commit_sha
    release.status_message = f"committed {commit_sha[:12]}; waiting for Argo CD to sync"
    release.save(update_fields=["commit_sha", "status_message"])
    audit_record(
        system_actor="deployer",
        action="release.committed",
        target_type="release",
        target_id=release.pk,
        after={"commit": commit_sha},
    )
    return release


@audited_atomic
def release_mark_live(*, release: Release, message: str = "") -> Release:
    """Argo CD runs the release's commit and reports Healthy: deploying -> live.

    The release it replaces becomes superseded (or rolled_back, when this is a rollback
    of it). Rows are locked in primary-key order so two status pollers cannot deadlock.
    """
    previous_qs = Release.objects.filter(
        service_id=release.service_id,
        environment_id=release.environment_id,
        state=ReleaseState.LIVE,
    ).exclude(pk=release.pk)
    ids = sorted([release.pk, *previous_qs.values_list("pk", flat=True)])
    locked = {
        r.pk: r for r in Release.objects.select_for_update(**LOCK).filter(pk__in=ids).order_by("pk")
    }
    release = locked[release.pk]
    if release.state == ReleaseState.LIVE:
        return release
    _check_transition(release, ReleaseState.LIVE, doing="mark live")
    if not release.commit_sha:
        raise Conflict(f"Release #{release.pk} has no commit yet; it cannot be live.")
    now = timezone.now()
    for pk in ids:
        previous = locked[pk]
        if pk == release.pk or previous.state != ReleaseState.LIVE:
            continue
        rolled_back = release.kind == ReleaseKind.ROLLBACK and release.rolled_back_release_id == pk
        to_state = ReleaseState.ROLLED_BACK if rolled_back else ReleaseState.SUPERSEDED
        _move(
            previous,
            to_state,
            system_actor="deployer",
            action=f"release.{to_state}",
            fields={"ended_at": now},
            note={"by": release.pk},
        )
    _move(
        release,
        ReleaseState.LIVE,
        system_actor="deployer",
        action="release.live",
        fields={"live_at": now, "status_message": message or "Synced and Healthy"},
        note={"commit": release.commit_sha},
    )
    _assign_alias_on_commit(release)
    return release


def _assign_alias_on_commit(release: Release) -> None:
    """Point the MLflow alias named after the environment at the live version. MLflow
    being down never blocks this: the registry retries and shows the failure."""
    from apps.registry.services import registry_alias_assign

    registry_alias_assign(
        model_version=release.model_version,
        alias=release.environment.name,
        release_uid=str(release.uid),
        actor_label="deployer",
    )


@audited_atomic
def release_mark_failed(*, release: Release, message: str) -> Release:
    """The rollout did not become healthy (or could not be committed): -> failed.

    If the failed release's files reached the repository, the live release's files are
    committed again (a restore, audited as a rollback by the deployer), so the repository
    always describes what Slipway calls live.
    """
    release = _locked(release)
    if release.state == ReleaseState.FAILED:
        return release
    _check_transition(release, ReleaseState.FAILED, doing="mark failed")
    _move(
        release,
        ReleaseState.FAILED,
        system_actor="deployer",
        action="release.failed",
        fields={"ended_at": timezone.now(), "status_message": message[:2000]},
        note={"message": message[:500]},
    )
    rollout_end_of(release, why=f"ended: the release failed ({message[:300]})")
    if release.commit_sha:
        _restore_live_after_failure(release)
    return release


def _restore_live_after_failure(failed: Release) -> Release | None:
    """Commit the live release's manifests again after ``failed`` replaced them.

    The restore is a rollback like any other: created as a draft and moved to approved
    through ``_move`` (break-glass, by the deployer), so it is audited as that move and
    on-call and the failed release's requester are told a rollback started, in this
    transaction (the outbox row commits with it)."""
    target = failed.service_id, failed.environment_id
    still_moving = Release.objects.filter(
        service_id=target[0],
        environment_id=target[1],
        state__in=[ReleaseState.APPROVED, ReleaseState.DEPLOYING],
    ).exists()
    live = (
        Release.objects.select_for_update(**LOCK)
        .filter(service_id=target[0], environment_id=target[1], state=ReleaseState.LIVE)
        .first()
    )
    if still_moving or live is None:
        return None  # a newer release will overwrite the folder, or there is nothing to restore
    now = timezone.now()
    reason = (
        f"Automatic restore of live release #{live.pk} after release #{failed.pk} failed "
        "to roll out."
    )
    restore = Release.objects.create(
        service_id=target[0],
        environment_id=target[1],
        model_version=live.model_version,
        config_overrides=live.config_overrides,
        config=live.config,
        rendered_files=live.rendered_files,
        digest=live.digest,
        kind=ReleaseKind.ROLLBACK,
        state=ReleaseState.DRAFT,
        requested_by_system="deployer",
        reason=reason,
        rollback_target=live,
        rolled_back_release=failed,
        break_glass=True,
    )
    audit_record(
        system_actor="deployer",
        action="release.restore",
        target_type="release",
        target_id=restore.pk,
        after={"state": "draft", "restores": live.pk, "after_failure_of": failed.pk},
    )
    _move(
        restore,
        ReleaseState.APPROVED,
        system_actor="deployer",
        action="release.break_glass",
        fields={"submitted_at": now, "approved_at": now},
        note={"reason": reason},
    )
    release_queue.enqueue_deploy_on_commit()
    return restore


def release_note_status(*, release: Release, message: str) -> None:
    """Keep the latest word from git or Argo CD on the release page (no state change)."""
    Release.objects.filter(pk=release.pk).exclude(status_message=message).update(
        status_message=message[:2000]
    )


def target_record_status(
    *, target: ServiceEnvironment, sync_status: str, health_status: str, revision: str, message: str
) -> None:
    """Store what Argo CD last said about a service in an environment (fleet overview),
    and since when its health has been what it is."""
    now = timezone.now()
    ServiceEnvironment.objects.filter(pk=target.pk).exclude(
        health_status=health_status[:32]
    ).update(health_since=now)
    ServiceEnvironment.objects.filter(pk=target.pk).update(
        sync_status=sync_status[:32],
        health_status=health_status[:32],
        synced_revision=revision[:64],
        status_message=message[:2000],
        status_observed_at=now,
    )
