"""Freezes at the two moments that matter (docs/freeze-windows.md).

- **Request**: asking for a release into a frozen environment (submitting a draft,
  requesting a promotion) is refused with a 409 that says why and until when, unless
  on-call or an admin breaks glass with a reason. Refusing rather than queueing silently
  keeps the requester from believing the change will ship today.
- **Commit**: a release approved before the freeze began (or still waiting for approvals
  when it began) is *held*: ``release_deploy_claim`` checks the freeze under the release
  row lock, inside the deploy drain that holds the repository writer lock, so a freeze
  that starts between approval and commit cannot slip through. The release stays
  approved, its page says it is held and until when, and the first drain after the
  freeze ends commits it (the status poll re-sends the drain).

Rollbacks (on-call's, the guard's automatic ones, restores) are never frozen.
"""

from __future__ import annotations

from django.utils import timezone

from apps.audit.services import audit_record, audited_atomic
from apps.core.errors import Conflict, DomainError, Forbidden
from apps.releases import permissions
from apps.releases import queue as release_queue
from apps.releases.freeze import FreezeStatus, freeze_status, is_exempt
from apps.releases.models import Release, ReleaseState
from apps.releases.services._transitions import _clean_text, _locked

# The states in which a release can still be let through a freeze.
OVERRIDABLE_STATES = frozenset(
    {ReleaseState.DRAFT, ReleaseState.PENDING_APPROVAL, ReleaseState.APPROVED}
)


def frozen_refusal(status: FreezeStatus, *, doing: str) -> Conflict:
    """The 409 for a request into a frozen environment: reason, end, and the way out."""
    return Conflict(
        f"{status.message} Ask for this {doing} again once it ends, or have on-call or an "
        "admin break glass with a reason.",
        extra={"freeze": status.as_dict()},
    )


def refuse_if_frozen(*, release: Release | None = None, environment=None, doing: str) -> None:
    """Raise the freeze's 409 unless the release is a rollback or was let through."""
    if release is not None and (is_exempt(release) or release.freeze_override_reason):
        return
    status = freeze_status(environment if environment is not None else release.environment)
    if status.frozen:
        raise frozen_refusal(status, doing=doing)


def break_glass_reason(actor, reason: str, *, service) -> str:
    """Check who breaks glass (on-call or admin for ``service``'s team) and clean the
    reason they give; the reason is required."""
    if not permissions.can_break_freeze(actor):
        raise Forbidden("Only on-call and admins break glass through a freeze.")
    if not permissions.can_break_freeze(actor, service):
        raise Forbidden(permissions.other_team_refusal(service, "on call"))
    reason = _clean_text(reason, field="break_glass")
    if not reason:
        raise DomainError(
            "Say why this must go out during the freeze.",
            field_errors={"break_glass": ["required to break glass"]},
        )
    return reason


def record_override(*, actor, release: Release, reason: str) -> None:
    """Mark ``release`` (row locked by the caller) as let through every freeze, with the
    audit row: who, why, and which freezes were active then."""
    status = freeze_status(release.environment)
    now = timezone.now()
    release.freeze_override_reason = reason
    release.freeze_override_by = actor
    release.freeze_override_at = now
    release.save(
        update_fields=["freeze_override_reason", "freeze_override_by", "freeze_override_at"]
    )
    audit_record(
        actor=actor,
        action="release.freeze_override",
        target_type="release",
        target_id=release.pk,
        after={
            "reason": reason,
            "environment": release.environment.name,
            "frozen": status.frozen,
            "freezes": status.reasons,
            "until": status.until_text,
        },
    )


@audited_atomic
def release_freeze_override(*, actor, release: Release, reason: str) -> Release:
    """Break glass: let a release already asked for (draft, waiting for approval, or
    approved and held) through any freeze of its environment. On-call or admin only, with
    a reason; audited. Approvals are still required: this lifts the freeze, not the
    review. A held release is sent to the deployer at once."""
    reason = break_glass_reason(actor, reason, service=release.service)
    release = _locked(release)
    if is_exempt(release):
        raise Conflict(f"Release #{release.pk} is a rollback; rollbacks are never frozen.")
    if release.state not in OVERRIDABLE_STATES:
        raise Conflict(
            f"Release #{release.pk} is {release.get_state_display().lower()}; only a release "
            "not yet deploying can be let through a freeze."
        )
    if release.freeze_override_reason:
        return release  # already let through: a second click changes nothing
    record_override(actor=actor, release=release, reason=reason)
    if release.state == ReleaseState.APPROVED:
        release_queue.enqueue_deploy_on_commit()
    return release


def held_by_freeze(release: Release) -> FreezeStatus | None:
    """The freeze holding this approved release at the commit, or None when it may go.
    Called by ``release_deploy_claim`` with the row locked."""
    if is_exempt(release) or release.freeze_override_reason:
        return None
    status = freeze_status(release.environment)
    return status if status.frozen else None


def hold_message(status: FreezeStatus) -> str:
    return f"Held by a freeze: {status.message} It is committed when the freeze ends."
