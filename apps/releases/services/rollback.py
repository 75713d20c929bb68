"""Rollback: take back the live release of a service in an environment by committing an
earlier good release's manifests again, as a new release of kind ``rollback``."""

from __future__ import annotations

from django.db import IntegrityError
from django.db.models import F, Q, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from apps.audit.services import audit_record, audited_atomic
from apps.core.errors import Conflict, DomainError, Forbidden
from apps.releases import permissions
from apps.releases import queue as release_queue
from apps.releases.models import Environment, Release, ReleaseKind, ReleaseState, Service
from apps.releases.selectors import guard_judges_as, release_policy_progress
from apps.releases.services._transitions import LOCK, _committed_text, _move

# A rollback in one of these states is still under way: a second one is refused.
ROLLBACK_UNDER_WAY = (ReleaseState.PENDING_APPROVAL, ReleaseState.APPROVED, ReleaseState.DEPLOYING)


def history_point(release: Release):
    """When ``release``'s manifests first went live. A rollback stands where the release
    it restored stood: rolling back v3 to v1 puts the target back at v1's place in
    history, so "older" from there means older than v1, not older than the rollback."""
    seen = set()
    while (
        release.kind == ReleaseKind.ROLLBACK
        and release.rollback_target_id is not None
        and release.pk not in seen
    ):
        seen.add(release.pk)
        release = release.rollback_target
    return release.live_at


def rollback_candidates(live: Release):
    """Releases ``live`` may be rolled back to: the last good *older* ones. Good: went
    live and were superseded (not rolled back, which would mean they were bad). Older:
    first went live before the history point of ``live`` (for a rollback, the release it
    restored; comparing with the rollback's own live time offered v2 after a rollback from
    v3 to v1). Original releases only: a superseded rollback carries the same manifests
    as the release it restored, which is offered itself. Differ from what is live (the
    same manifests again would change nothing). Newest first."""
    point = history_point(live)
    if point is None:
        return Release.objects.none()
    return (
        Release.objects.filter(
            service_id=live.service_id,
            environment_id=live.environment_id,
            state=ReleaseState.SUPERSEDED,
            live_at__isnull=False,
            live_at__lt=point,
        )
        .exclude(kind=ReleaseKind.ROLLBACK)
        .exclude(digest=live.digest)
        .order_by("-live_at", "-pk")
    )


def rollback_default_target(live: Release) -> Release | None:
    """The last release that was live and healthy before ``live``."""
    return rollback_candidates(live).first()


def rollback_default_targets(lives, *, fields=None) -> dict[int, Release]:
    """``rollback_default_target`` of many live releases (one per target) at once, by the
    live release's id; those with nothing to go back to are left out. One query, plus one
    per hop of history when some live release is itself a rollback (usually one): a page
    offering ten rollbacks made ten or twenty. ``fields``: the only columns to load (the
    ``model_version__`` ones join it)."""
    lives = list(lives)
    points = _history_points(lives)
    wanted = Q()
    for live in lives:
        if points.get(live.pk) is not None:
            wanted |= Q(
                service_id=live.service_id,
                environment_id=live.environment_id,
                live_at__lt=points[live.pk],
            ) & ~Q(digest=live.digest)
    if not wanted:
        return {}
    rows = (
        Release.objects.filter(wanted, state=ReleaseState.SUPERSEDED, live_at__isnull=False)
        .exclude(kind=ReleaseKind.ROLLBACK)
        # The newest candidate of each target (rollback_candidates' order), in SQL.
        .annotate(
            newest=Window(
                RowNumber(),
                partition_by=[F("service_id"), F("environment_id")],
                order_by=[F("live_at").desc(), F("pk").desc()],
            )
        )
        .filter(newest=1)
    )
    if fields is not None:
        if any(name.startswith("model_version__") for name in fields):
            rows = rows.select_related("model_version")
        rows = rows.only(*fields)
    by_target = {(row.service_id, row.environment_id): row for row in rows}
    return {
        live.pk: by_target[(live.service_id, live.environment_id)]
        for live in lives
        if (live.service_id, live.environment_id) in by_target
    }


def _history_points(lives) -> dict[int, object]:
    """``history_point`` of each live release, following the rollbacks' targets a hop at
    a time for all of them together."""
    points: dict[int, object] = {}
    pending: dict[int, list[tuple[int, set]]] = {}  # rollback target -> [(live id, seen)]
    for live in lives:
        if live.kind == ReleaseKind.ROLLBACK and live.rollback_target_id is not None:
            pending.setdefault(live.rollback_target_id, []).append((live.pk, {live.pk}))
        else:
            points[live.pk] = live.live_at
    while pending:
        step: dict[int, list] = {}
        for release in Release.objects.filter(pk__in=list(pending)).only(
            "id", "kind", "rollback_target_id", "live_at"
        ):
            for live_id, seen in pending.pop(release.pk):
                if (
                    release.kind == ReleaseKind.ROLLBACK
                    and release.rollback_target_id is not None
                    and release.pk not in seen
                ):
                    step.setdefault(release.rollback_target_id, []).append(
                        (live_id, seen | {release.pk})
                    )
                else:
                    points[live_id] = release.live_at
        for live_ids in pending.values():  # a target that no longer exists
            for live_id, _ in live_ids:
                points[live_id] = None
        pending = step
    return points


def release_rollback(
    *,
    service: Service,
    environment: Environment,
    reason: str,
    actor=None,
    system_actor: str | None = None,
    target: Release | None = None,
    break_glass: bool = True,
    expected_live: Release | None = None,
) -> Release:
    """Take back the live release of a service in an environment by committing an earlier
    good release's manifests again (history moves forward; nothing is reverted or forced).

    On-call may skip approvals (break-glass) with a written reason, always audited.
    One rollback per target at a time: a double click, a second browser or a second
    person gets a Conflict naming the rollback already under way. ``expected_live``
    guards against acting on a stale page: if the live release changed, refuse.
    """
    if system_actor is None and not permissions.can_rollback(actor):
        raise Forbidden("Only on-call staff and admins roll back.")
    if system_actor is None and not permissions.can_rollback(actor, service):
        raise Forbidden(permissions.other_team_refusal(service, "on call"))
    reason = _committed_text(reason, field="reason")
    if not reason:
        raise DomainError(
            "Say why you roll back; it goes in the audit log and the commit.",
            field_errors={"reason": ["required"]},
        )
    try:
        with audited_atomic():
            return _rollback_locked(
                service=service,
                environment=environment,
                reason=reason,
                actor=actor,
                system_actor=system_actor,
                target=target,
                break_glass=break_glass,
                expected_live=expected_live,
            )
    except IntegrityError:
        # The partial unique index caught a concurrent rollback the lock did not (SQLite).
        raise _rollback_conflict(service, environment) from None


def _rollback_conflict(service, environment) -> Conflict:
    running = Release.objects.filter(
        service=service,
        environment=environment,
        kind=ReleaseKind.ROLLBACK,
        state__in=ROLLBACK_UNDER_WAY,
    ).first()
    if running is None:
        return Conflict("Another rollback was just requested; reload the page.")
    return Conflict(
        f"A rollback is already under way: release #{running.pk} to "
        f"{running.model_version}, requested by {running.requester_label}."
    )


def _rollback_locked(
    *, service, environment, reason, actor, system_actor, target, break_glass, expected_live
) -> Release:
    """The rollback's transaction, step by step; each step refuses with a Conflict that
    says what to do instead."""
    live = _lock_live(service=service, environment=environment, expected_live=expected_live)
    _refuse_second_rollback(service=service, environment=environment)
    # A drift restore stands for the release whose files it re-commits: the guard may
    # roll it back when that release was no rollback (guard_judges_as).
    if system_actor and guard_judges_as(live).kind == ReleaseKind.ROLLBACK:
        raise Conflict(
            "The live release is itself a rollback; the guard never rolls back a rollback."
        )
    target = _checked_target(service=service, environment=environment, live=live, target=target)
    now = timezone.now()
    rollback = _create_rollback(
        service=service,
        environment=environment,
        live=live,
        target=target,
        reason=reason,
        actor=actor,
        system_actor=system_actor,
        break_glass=break_glass,
    )
    _cancel_queued(rollback=rollback, actor=actor, system_actor=system_actor, now=now)
    _submit_rollback(
        rollback=rollback,
        reason=reason,
        actor=actor,
        system_actor=system_actor,
        break_glass=break_glass,
        now=now,
    )
    return rollback


def _lock_live(*, service, environment, expected_live) -> Release:
    """Lock and return the live release. Its row is the per-target mutex: concurrent
    rollbacks queue here, and the second one then finds the first one's release."""
    live = (
        Release.objects.select_for_update(**LOCK)
        .filter(service=service, environment=environment, state=ReleaseState.LIVE)
        .first()
    )
    if live is None:
        raise Conflict(
            f"Nothing is live for {service.name} in {environment.name}; "
            "there is nothing to roll back."
        )
    if expected_live is not None and expected_live.pk != live.pk:
        raise Conflict(
            f"The live release changed (now #{live.pk}, {live.model_version}) since you "
            "opened the page; reload and check before rolling back."
        )
    return live


def _refuse_second_rollback(*, service, environment) -> None:
    """One rollback per target at a time (a double click, a second browser)."""
    if Release.objects.filter(
        service=service,
        environment=environment,
        kind=ReleaseKind.ROLLBACK,
        state__in=ROLLBACK_UNDER_WAY,
    ).exists():
        raise _rollback_conflict(service, environment)


def _checked_target(*, service, environment, live: Release, target: Release | None) -> Release:
    """The release to restore: the one asked for if it is a good earlier release of the
    same target that differs from what is live, else the last good one."""
    if target is None:
        target = rollback_default_target(live)
        if target is None:
            raise Conflict(
                f"No earlier good release of {service.name} in {environment.name} to roll back to."
            )
    elif (target.service_id, target.environment_id) != (service.pk, environment.pk):
        raise DomainError("The rollback target belongs to another service or environment.")
    elif target.state != ReleaseState.SUPERSEDED or target.live_at is None:
        raise Conflict(
            f"Release #{target.pk} is {target.get_state_display().lower()}; roll back "
            "only to a release that was live and then superseded (a good one)."
        )
    elif target.digest == live.digest:
        raise Conflict(
            f"Release #{target.pk} has exactly the manifests that are live now "
            f"(#{live.pk}); rolling back to it would change nothing."
        )
    elif not rollback_candidates(live).filter(pk=target.pk).exists():
        raise Conflict(
            f"Release #{target.pk} is not older than what is live (#{live.pk}, "
            f"{live.model_version}); a rollback goes back to an earlier good release."
        )
    return target


def _create_rollback(
    *, service, environment, live, target, reason, actor, system_actor, break_glass
) -> Release:
    """A draft release carrying the target's exact manifests (same digest), and its
    audit row naming what it rolls back and what it restores."""
    rollback = Release.objects.create(
        service=service,
        environment=environment,
        model_version=target.model_version,
        config_overrides=target.config_overrides,
        config=target.config,
        rendered_files=target.rendered_files,
        digest=target.digest,
        kind=ReleaseKind.ROLLBACK,
        state=ReleaseState.DRAFT,
        requested_by=actor,
        requested_by_system=system_actor or "",
        reason=reason,
        rollback_target=target,
        rolled_back_release=live,
        break_glass=break_glass,
    )
    audit_record(
        actor=actor,
        system_actor=system_actor,
        action="release.rollback",
        target_type="release",
        target_id=rollback.pk,
        after={
            "state": "draft",
            "rolls_back": live.pk,
            "restores": target.pk,
            "model_version": str(target.model_version),
            "break_glass": break_glass,
            "reason": reason,
        },
    )
    return rollback


def _cancel_queued(*, rollback: Release, actor, system_actor, now) -> None:
    """Cancel what waits for approval or deploy in this target: it would land after the
    rollback and undo it. Locked in primary-key order (no deadlock with another locker)."""
    for queued in (
        Release.objects.select_for_update(**LOCK)
        .filter(
            service=rollback.service,
            environment=rollback.environment,
            state__in=[ReleaseState.PENDING_APPROVAL, ReleaseState.APPROVED],
        )
        .exclude(pk=rollback.pk)
        .order_by("pk")
    ):
        _move(
            queued,
            ReleaseState.CANCELLED,
            actor=actor,
            system_actor=system_actor,
            action="release.cancel",
            fields={"ended_at": now},
            note={"reason": f"cancelled by rollback #{rollback.pk}"},
        )


def _submit_rollback(*, rollback: Release, reason, actor, system_actor, break_glass, now) -> None:
    """Break-glass approves at once (audited with the reason); otherwise the rollback goes
    to the environment's reviewers like any release. Approved means deploy after commit."""
    if break_glass:
        _move(
            rollback,
            ReleaseState.APPROVED,
            actor=actor,
            system_actor=system_actor,
            action="release.break_glass",
            fields={"submitted_at": now, "approved_at": now},
            note={"reason": reason},
        )
        release_queue.enqueue_deploy_on_commit()
        return
    progress = release_policy_progress(rollback)
    state = ReleaseState.APPROVED if progress.met else ReleaseState.PENDING_APPROVAL
    _move(
        rollback,
        state,
        actor=actor,
        system_actor=system_actor,
        action="release.submit",
        fields={"submitted_at": now, **({"approved_at": now} if progress.met else {})},
        note={"policy": progress.summary},
    )
    if progress.met:
        release_queue.enqueue_deploy_on_commit()
