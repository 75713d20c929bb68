"""Who may do what to releases. Services enforce these; pages use them to show only the
actions the current person may take.

Every action on a service is scoped to the service's team (``Service.owner_team``): the
person must hold the role for that team or organisation-wide
(``apps.accounts.roles.has_role_for``). Called without a service, the ``can_*``
questions mean "for at least one team" and only decide whether to show a page or a
button that leads to a team-scoped choice.
"""

from __future__ import annotations

from apps.accounts.roles import (
    REVIEWER_ROLES,
    Role,
    has_role,
    has_role_for,
    role_team_ids,
    team_roles,
    user_roles,
)

_CREATORS = (Role.ML_ENGINEER, Role.ADMIN)
_ROLLBACKERS = (Role.ONCALL, Role.ADMIN)


def _team(service):
    return service.owner_team_id


def _holds(user, roles, service) -> bool:
    if service is None:
        return has_role(user, *roles)
    return any(has_role_for(user, role, _team(service)) for role in roles)


def can_create_release(user, service=None) -> bool:
    return _holds(user, _CREATORS, service)


def can_promote(user, service=None) -> bool:
    return _holds(user, _CREATORS, service)


def can_rollback(user, service=None) -> bool:
    return _holds(user, _ROLLBACKERS, service)


def can_break_freeze(user, service=None) -> bool:
    """Break glass through a freeze (apps.releases.freeze): the people who answer for
    the team's services during an incident, scoped like rollback."""
    return _holds(user, _ROLLBACKERS, service)


def review_roles(user, release=None) -> frozenset[str]:
    """The reviewer roles ``user`` holds for ``release``'s team (any team without one)."""
    held = user_roles(user) if release is None else team_roles(user, _team(release.service))
    return held & REVIEWER_ROLES


def can_review(user, release=None) -> bool:
    return bool(review_roles(user, release))


def creator_team_ids(user) -> frozenset[int] | None:
    """Teams whose services ``user`` may release (None: every team)."""
    return role_team_ids(user, *_CREATORS)


def rollback_team_ids(user) -> frozenset[int] | None:
    """Teams whose services ``user`` may roll back (None: every team)."""
    return role_team_ids(user, *_ROLLBACKERS)


def other_team_refusal(service, role_label: str) -> str:
    """The message for someone who holds a role, but not for this service's team."""
    team = service.owner_team.slug
    return (
        f"{service.name} belongs to team {team}; you are not {role_label} for {team}. "
        f"Ask an admin for a grant on {team} if you should be."
    )


def is_requester(user, release) -> bool:
    return release.requested_by_id is not None and release.requested_by_id == user.pk


def is_trainer(user, release) -> bool:
    """Whether ``user`` trained the release's model (the MLflow run's user), matched by
    username or e-mail address, as MLflow records the tracking client's login."""
    trainer = release.model_version.trainer.strip().lower()
    if not trainer or not getattr(user, "is_authenticated", False):
        return False
    return trainer in {user.get_username().lower(), (user.email or "").lower()} - {""}


def trainer_blocked(user, release) -> bool:
    """Separation of duties: the environment refuses the trainer as an approver."""
    return release.environment.separates_trainer and is_trainer(user, release)


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
