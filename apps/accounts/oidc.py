"""Which Slipway roles a single sign-on identity gets: the provider's group claim,
mapped through ``SLIPWAY_OIDC_ROLE_MAP``.

The map's keys are group values as the provider sends them; each value is a role name
(org-wide) or ``role@team-slug`` (that role in one team only), or a list of those:

    SLIPWAY_OIDC_ROLE_MAP='{"slipway-admins": "admin",
                            "churn-reviewers": ["product-reviewer@churn", "oncall"]}'

A group the map does not name grants nothing; a person whose groups grant nothing signs
in with no role and is shown why (apps.accounts.views.no_role). Pure functions: the
sign-in backend (apps.accounts.oidc_auth) applies the result, org-wide roles through the
role groups and team roles as grants (apps.accounts.signin.user_sync_sso_roles).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from apps.accounts.roles import ALL_ROLES, Role

log = logging.getLogger(__name__)

RoleGrant = tuple[str, "str | None"]  # (role name, team slug or None for org-wide)
_TEAM_SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


def parse_grant(text: str) -> RoleGrant:
    """``"oncall"`` -> ("oncall", None); ``"oncall@churn"`` -> ("oncall", "churn")."""
    role, _, team = str(text).strip().partition("@")
    if role not in ALL_ROLES:
        raise ImproperlyConfigured(
            f"SLIPWAY_OIDC_ROLE_MAP names the role {role!r}; roles are {sorted(ALL_ROLES)}."
        )
    if team and role == Role.ADMIN:
        raise ImproperlyConfigured(
            f"SLIPWAY_OIDC_ROLE_MAP: {text!r} grants admin for one team; admin is held "
            'for the whole organisation (write "admin").'
        )
    if team and not _TEAM_SLUG.fullmatch(team):
        raise ImproperlyConfigured(
            f"SLIPWAY_OIDC_ROLE_MAP: {text!r} has a team part that is not a team slug "
            "(lower-case letters, digits and dashes)."
        )
    return role, team or None


def parse_role_map(raw: Mapping) -> dict[str, frozenset[RoleGrant]]:
    """The setting as {group: grants}; a wrong role or team names the entry."""
    if not isinstance(raw, Mapping):
        raise ImproperlyConfigured("SLIPWAY_OIDC_ROLE_MAP must be a JSON object.")
    parsed = {}
    for group, value in raw.items():
        values = value if isinstance(value, list) else [value]
        parsed[str(group)] = frozenset(parse_grant(v) for v in values)
    return parsed


def claim_groups(claims: Mapping, *, groups_claim: str | None = None) -> list[str]:
    """The group values in the claims. Providers send a list, a single string, or (some
    Keycloak mappers) a path like ``/slipway/admins``; all are taken as given."""
    name = groups_claim or settings.SLIPWAY_OIDC_GROUPS_CLAIM
    value = claims.get(name)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, Iterable):
        return [str(v) for v in value if isinstance(v, str | int)]
    return []


def roles_from_claims(
    claims: Mapping, *, role_map: Mapping | None = None, groups_claim: str | None = None
) -> set[RoleGrant]:
    """Every (role, team_slug or None) the claims' groups grant through the role map."""
    mapping = parse_role_map(settings.SLIPWAY_OIDC_ROLE_MAP if role_map is None else role_map)
    grants: set[RoleGrant] = set()
    for group in claim_groups(claims, groups_claim=groups_claim):
        grants |= mapping.get(group, frozenset())
    return grants


def org_roles(grants: Iterable[RoleGrant]) -> set[str]:
    return {role for role, team in grants if team is None}


def team_grants(grants: Iterable[RoleGrant]) -> set[tuple[str, str]]:
    return {(role, team) for role, team in grants if team is not None}
