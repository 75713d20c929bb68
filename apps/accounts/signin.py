"""Sign-in actions: lockouts and their release, and roles re-synced from single sign-on.

Kept apart from services.py (tokens and role membership) so sign-in can change without
touching the role and team services.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.contrib.auth.models import Group

from apps.accounts.models import RoleGrant as GrantRow
from apps.accounts.models import Team
from apps.accounts.oidc import RoleGrant, org_roles, team_grants
from apps.accounts.roles import ALL_ROLES, forget_grants
from apps.accounts.services import role_grant_add, role_grant_remove
from apps.audit.services import audit_record, audited_atomic

log = logging.getLogger(__name__)


def signin_lockout_record(*, username: str | None, ip_address: str | None, failures: int) -> None:
    """Write the lockout to the audit chain: who (the username tried, which may not
    exist) from where, after how many failures. Called once per lockout, when the
    failure that reaches the limit is recorded (apps.accounts.apps connects it)."""
    with audited_atomic():
        audit_record(
            system_actor="signin",
            action="signin.lockout",
            target_type="signin",
            target_id=(username or "")[:64],
            after={"username": username, "ip_address": ip_address, "failures": failures},
        )


def signin_lockout_clear(*, attempts: Iterable, cleared_by) -> int:
    """Unlock: delete these django-axes AccessAttempt rows (their failure counts go with
    them), one audit row each, in one transaction. Returns how many were cleared."""
    from axes.models import AccessAttempt

    ids = [a.pk for a in attempts]
    cleared = 0
    with audited_atomic():
        for attempt in AccessAttempt.objects.filter(pk__in=ids).order_by("pk").select_for_update():
            audit_record(
                actor=cleared_by,
                action="signin.unlock",
                target_type="signin",
                target_id=(attempt.username or "")[:64],
                before={
                    "username": attempt.username,
                    "ip_address": attempt.ip_address,
                    "failures": attempt.failures_since_start,
                },
            )
            attempt.delete()
            cleared += 1
    return cleared


def user_sync_sso_roles(*, user, grants: set[RoleGrant], groups: list[str]) -> bool:
    """Make the user's Slipway roles exactly what the provider's groups grant, at every
    SSO sign-in: a group removed at the provider takes its role away at the next
    sign-in. Audited only when something changes. Returns whether it changed."""
    wanted = org_roles(grants)
    with audited_atomic():
        current = set(user.groups.filter(name__in=ALL_ROLES).values_list("name", flat=True))
        changed = current != wanted
        if changed:
            user.groups.remove(*Group.objects.filter(name__in=current - wanted))
            user.groups.add(*Group.objects.filter(name__in=wanted - current))
            forget_grants(user)
            audit_record(
                system_actor="sso",
                action="user.roles",
                target_type="user",
                target_id=user.pk,
                before={"roles": sorted(current)},
                after={"roles": sorted(wanted), "groups": sorted(groups)},
            )
        changed |= _sync_team_grants(user=user, wanted=team_grants(grants))
    return changed


def _sync_team_grants(*, user, wanted: set[tuple[str, str]]) -> bool:
    """Make the user's single-sign-on team grants exactly ``wanted`` ((role, team slug)
    pairs), through the grant services (checked and audited one by one, actor
    ``system:sso``), leaving grants an admin made alone: an admin's grant the provider
    also names stays the admin's, and one it stops naming stays. A team the provider
    names but Slipway does not have grants nothing (admins create teams) and is logged.
    Runs inside the caller's audited transaction."""
    teams = {t.slug: t for t in Team.objects.filter(slug__in={slug for _, slug in wanted})}
    unknown = sorted({slug for _, slug in wanted} - teams.keys())
    if unknown:
        log.warning("SSO names teams Slipway does not have", extra={"teams": unknown})
    wanted = {(role, slug) for role, slug in wanted if slug in teams}
    held = {
        (g.role, g.team.slug): g
        for g in GrantRow.objects.filter(user=user, team__isnull=False).select_related("team")
    }
    changed = False
    for key in sorted(key for key, g in held.items() if g.source == "sso" and key not in wanted):
        role, _slug = key
        changed |= role_grant_remove(user=user, role=role, team=held[key].team, source="sso")
    for role, slug in sorted(wanted - held.keys()):
        role_grant_add(user=user, role=role, team=teams[slug], source="sso")
        changed = True
    return changed
