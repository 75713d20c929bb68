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


def can_break_freeze(user) -> bool:
    """Break glass through a freeze (apps.releases.freeze): the people who answer for
    production during an incident."""
    return has_role(user, Role.ONCALL, Role.ADMIN)


def can_review(user) -> bool:
    return bool(user_roles(user) & REVIEWER_ROLES)


def is_requester(user, release) -> bool:
    return release.requested_by_id is not None and release.requested_by_id == user.pk


def can_submit_or_cancel(user, release) -> bool:
    return is_requester(user, release) or has_role(user, Role.ADMIN)


def can_read_audit(user) -> bool:
    return user.has_perm("audit.view_auditevent")
