"""The auto-rollback guard: roll a release back, once, when its SLOs stay in breach
during its bake window and its environment asks for it.

The poll calls it after its write has committed, one release at a time, so each decision
commits in its own transaction together with the rollback it makes (which deploys once
that transaction commits).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.db import IntegrityError
from django.utils import timezone

from apps.audit.services import audit_record, audited_atomic
from apps.core.errors import Conflict
from apps.metrics.catalog import format_value
from apps.metrics.models import GuardDecision, GuardOutcome
from apps.metrics.selectors import LiveTarget
from apps.metrics.services.slo import JudgedState
from apps.releases.models import ReleaseKind
from apps.releases.selectors import guard_judges_as
from apps.releases.services import release_rollback, rollback_default_target

log = logging.getLogger(__name__)

GUARD_ACTOR = "auto-rollback-guard"


def guard_consider(
    *, live: LiveTarget, breaches: Sequence[JudgedState], now: datetime | None = None
) -> GuardDecision | None:
    """Roll back ``live.release`` if its environment asks for it (auto_rollback), it is
    within its bake window, and SLOs are in sustained breach (``breaches``).

    Decides at most once per release (a ``GuardDecision`` row, unique per release): it
    never rolls back a rollback (a drift restore counts as the release whose files it
    restores: ``guard_judges_as``), and holds (recording why) when no earlier good release
    is known; for a given live release neither answer can change later, so one recorded
    decision is the whole story. The rollback goes to the last good release, break-glass,
    with the numbers in its reason, and deploys once this transaction commits.
    """
    now = now or timezone.now()
    # Decided on the poll's plain values first: a poll in which the whole fleet breaches
    # outside its bake windows loads no release.
    if not live.auto_rollback or not breaches or live.live_at is None:
        return None
    if not live.live_at <= now <= live.live_at + timedelta(minutes=live.bake_minutes):
        return None
    release = live.release
    environment = release.environment
    if GuardDecision.objects.filter(release=release).exists():
        return None
    first = breaches[0]
    reason = _guard_reason(release, breaches, now)
    decision = GuardDecision(
        release=release,
        metric=first.metric,
        value=first.last_value,
        threshold=first.threshold,
        reason=reason,
        created_at=now,
    )
    try:
        with audited_atomic():
            note = ""
            judged_as = guard_judges_as(release)
            if judged_as.kind == ReleaseKind.ROLLBACK:
                decision.outcome = GuardOutcome.SKIPPED_ROLLBACK
                note = (
                    "The live release is itself a rollback; the guard never rolls back one."
                    if judged_as == release
                    else f"The live release restores the files of rollback #{judged_as.pk}; "
                    "the guard never rolls back a rollback."
                )
            elif rollback_default_target(release) is None:
                decision.outcome = GuardOutcome.HELD_UNKNOWN_PREVIOUS
                note = (
                    "No earlier good release (live, then superseded) is known to go back to; "
                    "the guard does nothing. Roll back by hand if needed."
                )
            else:
                try:
                    decision.rollback = release_rollback(
                        service=release.service,
                        environment=environment,
                        reason=reason,
                        system_actor=GUARD_ACTOR,
                        break_glass=True,
                        expected_live=release,
                    )
                    decision.outcome = GuardOutcome.ROLLED_BACK
                except Conflict as exc:
                    decision.outcome = GuardOutcome.REFUSED
                    note = str(exc)
            if note:
                decision.reason = f"{reason}\n{note}"
            decision.save()
            if decision.outcome != GuardOutcome.ROLLED_BACK:
                audit_record(
                    system_actor=GUARD_ACTOR,
                    action=f"guard.{decision.outcome}",
                    target_type="release",
                    target_id=release.pk,
                    after={"metric": first.metric, "reason": decision.reason},
                )
    except IntegrityError:
        # Another guard decided about this release first; its decision stands.
        return None
    log.warning("auto-rollback guard on release #%s: %s", release.pk, decision.outcome)
    return decision


def _guard_reason(release, breaches: Sequence[JudgedState], now: datetime) -> str:
    parts = []
    for state in breaches:
        since = state.breach_started_at or state.streak_since or now
        parts.append(
            f"{state.metric} {format_value(state.metric, state.last_value)} over SLO "
            f"{format_value(state.metric, state.threshold)} for {state.consecutive_bad} polls "
            f"(since {since:%H:%M:%S} UTC)"
        )
    minutes = int((now - release.live_at).total_seconds() // 60)
    return (
        "; ".join(parts)
        + f". Release #{release.pk} ({release.model_version}) went live {minutes} min ago; "
        f"{release.environment.name} bakes for {release.environment.bake_minutes} min and "
        "rolls back automatically."
    )
