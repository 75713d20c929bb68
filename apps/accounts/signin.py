"""Sign-in actions: lockouts and their release, and roles re-synced from single sign-on.

Kept apart from services.py (tokens and role membership) so sign-in can change without
touching the role and team services.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.models import Group

from apps.accounts.oidc import RoleGrant, apply_team_role_grants, org_roles, team_grants
from apps.accounts.roles import ALL_ROLES
from apps.audit.services import audit_record, audited_atomic


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
            user.__dict__.pop("_slipway_roles", None)
            audit_record(
                system_actor="sso",
                action="user.roles",
                target_type="user",
                target_id=user.pk,
                before={"roles": sorted(current)},
                after={"roles": sorted(wanted), "groups": sorted(groups)},
            )
        apply_team_role_grants(user=user, grants=team_grants(grants))
    return changed
