"""Who may do what to releases. Services enforce these; pages use them to show only the
actions the current person may take."""

from __future__ import annotations

from apps.accounts.roles import REVIEWER_ROLES, Role, has_role, user_roles


def can_create_release(user) -> bool:
    return has_role(user, Role.ML_ENGINEER, Role.ADMIN)


def can_promote(user) -> bool:
    return has_role(user, Role.ML_ENGINEER, Role.ADMIN)


def can_rollback(user) -> bool:
    return has_role(user, Role.ONCALL, Role.ADMIN)


def can_review(user) -> bool:
    return bool(user_roles(user) & REVIEWER_ROLES)


def is_requester(user, release) -> bool:
    return release.requested_by_id is not None and release.requested_by_id == user.pk


def can_submit_or_cancel(user, release) -> bool:
    return is_requester(user, release) or has_role(user, Role.ADMIN)


def can_read_audit(user) -> bool:
    return user.has_perm("audit.view_auditevent")


def can_steer_rollout(user, action: str) -> bool:
    """People in the loop of a progressive rollout: ML engineers pause and resume,
    on-call aborts and promotes now, either lifts a hold (admins do all of it)."""
    if action in ("pause", "resume"):
        return can_promote(user)
    if action in ("abort", "promote"):
        return can_rollback(user)
    if action == "lift-hold":
        return can_promote(user) or can_rollback(user)
    return False
