"""The roles of Slipway, and who holds which for which team.

A role is held organisation-wide or for one team:

- organisation-wide: membership of the Django group named after the role (how people
  were set up before teams existed, and still the simple way), a RoleGrant without a
  team, or, for admin, being a superuser;
- for one team: a RoleGrant naming the team (e.g. product-reviewer of ``risk-ml``).

``has_role_for(user, role, team)`` is the one question every scoped check asks ("does
this person hold R for the team owning this service?"); ``team_roles`` is the same
answer as a set, and ``holders_q`` the same question asked of everyone at once ("who
holds R for this team?": the people to tell). ``user_roles`` / ``has_role`` answer
"held anywhere" and are for navigation and for showing a page at all, never for
allowing an action on a team's service.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import models
from django.db.models import Q


class Role(models.TextChoices):
    ML_ENGINEER = "ml-engineer", "ML engineer"
    PRODUCT_REVIEWER = "product-reviewer", "Product reviewer"
    COMPLIANCE_REVIEWER = "compliance-reviewer", "Compliance reviewer"
    ONCALL = "oncall", "On-call"
    ADMIN = "admin", "Admin"


REVIEWER_ROLES = frozenset({Role.PRODUCT_REVIEWER, Role.COMPLIANCE_REVIEWER})
ALL_ROLES = frozenset(Role)

_CACHE = "_slipway_grants"


@dataclass(frozen=True)
class Grants:
    """What one person holds: roles for every team, and roles for particular teams."""

    org: frozenset[str] = frozenset()
    by_team: dict[int, frozenset[str]] = field(default_factory=dict)

    def for_team(self, team_id: int | None) -> frozenset[str]:
        if team_id is None:
            return self.org
        return self.org | self.by_team.get(team_id, frozenset())

    @property
    def anywhere(self) -> frozenset[str]:
        return self.org.union(*self.by_team.values())


NO_GRANTS = Grants()


def user_grants(user) -> Grants:
    """The person's grants, read once per request (cached on the user object)."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return NO_GRANTS
    cached = getattr(user, _CACHE, None)
    if cached is not None:
        return cached
    org = set(user.groups.filter(name__in=ALL_ROLES).values_list("name", flat=True))
    if user.is_superuser:
        org.add(Role.ADMIN)
    by_team: dict[int, set[str]] = {}
    # Through the reverse relation: roles.py sits below accounts.models (which imports
    # Role from here), so it cannot import RoleGrant without a circle.
    for role, team_id in user.role_grants.values_list("role", "team_id"):
        if team_id is None:
            org.add(role)
        else:
            by_team.setdefault(team_id, set()).add(role)
    cached = Grants(
        org=frozenset(org),
        by_team={team: frozenset(roles) for team, roles in by_team.items()},
    )
    setattr(user, _CACHE, cached)
    return cached


def forget_grants(user) -> None:
    """Drop the cached grants after changing them, so this request sees the change."""
    user.__dict__.pop(_CACHE, None)


def _team_id(team) -> int | None:
    if team is None or isinstance(team, int):
        return team
    return team.pk


def has_role_for(user, role: str, team) -> bool:
    """Does ``user`` hold ``role`` for ``team`` (a Team, its id, or None for "the whole
    organisation")? An organisation-wide grant holds for every team; a team grant only
    for its team."""
    return role in user_grants(user).for_team(_team_id(team))


def holders_q(roles: Iterable[str], team) -> Q:
    """A filter on the user model for the people who hold any of ``roles`` for ``team``
    (a Team, its id, or None: organisation-wide holders only), by the rules of
    ``has_role_for``: active, and the role's group, an organisation-wide grant, a grant
    for this team or, for admin, being a superuser. The joins repeat a person holding a
    role twice: add ``.distinct()``.

    ``has_role_for`` does not use it: it answers for one person from the grants read
    once per request, where this is one query over everyone."""
    roles = sorted(set(roles))
    team_id = _team_id(team)
    scope = Q(role_grants__team__isnull=True)
    if team_id is not None:
        scope |= Q(role_grants__team_id=team_id)
    # One Q over role_grants: inside one filter() its conditions meet on the same grant
    # row (a grant for another team of the right role must not count).
    held = Q(groups__name__in=roles) | Q(scope, role_grants__role__in=roles)
    if Role.ADMIN in roles:
        held |= Q(is_superuser=True)
    return Q(held, is_active=True)


def team_roles(user, team) -> frozenset[str]:
    """Every role ``user`` holds for ``team``: the set form of ``has_role_for``."""
    return user_grants(user).for_team(_team_id(team))


def role_team_ids(user, *roles: str) -> frozenset[int] | None:
    """The teams for which ``user`` holds any of ``roles``: None means every team (an
    organisation-wide grant), an empty set none. For filtering querysets."""
    grants = user_grants(user)
    if grants.org & set(roles):
        return None
    return frozenset(team for team, held in grants.by_team.items() if held & set(roles))


def user_roles(user) -> frozenset[str]:
    """The roles the person holds anywhere (organisation-wide or for some team)."""
    return user_grants(user).anywhere


def has_role(user, *roles: str) -> bool:
    """Holds one of ``roles`` for at least one team. Not enough to act on a service:
    use ``has_role_for`` with the service's team."""
    return bool(user_roles(user) & set(roles))
