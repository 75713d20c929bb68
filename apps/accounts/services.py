"""Account actions: API tokens, teams, role membership and per-team role grants."""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth.models import Group, Permission
from django.utils import timezone

from apps.accounts.models import ALL_SCOPES, ApiToken, RoleGrant, Team
from apps.accounts.roles import ALL_ROLES, Role, forget_grants
from apps.audit.services import audit_record, audited_atomic


def api_token_create(
    *,
    user,
    name: str,
    created_by=None,
    scopes: list[str] | None = None,
    expires_at: datetime | None = None,
) -> tuple[ApiToken, str]:
    """Create a token and return it with its raw value, which is never stored. Without
    ``scopes`` the token gets every scope (what tokens could do before scopes)."""
    scopes = sorted(set(ALL_SCOPES if scopes is None else scopes))
    unknown = set(scopes) - set(ALL_SCOPES)
    if unknown or not scopes:
        raise ValueError(
            f"unknown scopes {sorted(unknown)}; choose from {', '.join(ALL_SCOPES)}"
            if unknown
            else "a token needs at least one scope"
        )
    if expires_at is not None and expires_at <= timezone.now():
        raise ValueError("expires_at is in the past")
    raw, key_hash = ApiToken.generate()
    with audited_atomic():
        token = ApiToken.objects.create(
            user=user,
            name=name,
            key_hash=key_hash,
            prefix=raw[:10],
            scopes=scopes,
            expires_at=expires_at,
        )
        audit_record(
            actor=created_by or user,
            action="api_token.create",
            target_type="api_token",
            target_id=token.pk,
            after={
                "user": user.get_username(),
                "name": name,
                "scopes": scopes,
                "expires_at": expires_at.isoformat() if expires_at else None,
            },
        )
    return token, raw


def api_token_revoke(*, token: ApiToken, revoked_by) -> None:
    """Revoke a token; requests carrying it are refused from now on."""
    with audited_atomic():
        updated = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        if updated:
            audit_record(
                actor=revoked_by,
                action="api_token.revoke",
                target_type="api_token",
                target_id=token.pk,
            )


# Django model permissions each role gets (the admin pages and the audit log use them).
_SETUP_APPS = ("releases", "registry", "accounts", "axes")  # axes: sign-in lockouts
_AUDIT_READERS = {Role.ADMIN, Role.COMPLIANCE_REVIEWER}


def roles_ensure_groups() -> None:
    """Create the role groups and give them their model permissions. Runs after every
    migrate (AccountsConfig.ready connects it to post_migrate), so a fresh database
    always has the roles."""
    groups = {name: Group.objects.get_or_create(name=name)[0] for name in ALL_ROLES}
    view_audit = Permission.objects.filter(
        content_type__app_label="audit", codename="view_auditevent"
    )
    setup = Permission.objects.filter(content_type__app_label__in=_SETUP_APPS)
    groups[Role.ADMIN].permissions.add(*setup, *view_audit)
    for role in _AUDIT_READERS:
        groups[role].permissions.add(*view_audit)


def user_set_roles(*, user, roles: set[str], changed_by=None) -> None:
    """Replace the user's Slipway roles; other groups are left alone."""
    unknown = set(roles) - ALL_ROLES
    if unknown:
        raise ValueError(f"unknown roles: {sorted(unknown)}")
    with audited_atomic():
        before = sorted(user.groups.filter(name__in=ALL_ROLES).values_list("name", flat=True))
        user.groups.remove(*Group.objects.filter(name__in=ALL_ROLES))
        user.groups.add(*Group.objects.filter(name__in=roles))
        forget_grants(user)
        audit_record(
            actor=changed_by,
            system_actor=None if changed_by else "setup",
            action="user.roles",
            target_type="user",
            target_id=user.pk,
            before={"roles": before},
            after={"roles": sorted(roles)},
        )


def team_create(*, slug: str, name: str = "", created_by=None) -> Team:
    """Create a team; the slug is checked as the admin form checks it."""
    team = Team(slug=slug, name=name)
    team.full_clean()
    with audited_atomic():
        team.save()
        audit_record(
            actor=created_by,
            system_actor=None if created_by else "setup",
            action="team.create",
            target_type="team",
            target_id=team.pk,
            after={"slug": slug, "name": name},
        )
    return team


# Who made a grant (RoleGrant.source): an admin's stays until an admin removes it; single
# sign-on's follow the provider's groups at every sign-in (apps.accounts.signin).
GRANT_SOURCES = ("admin", "sso")


def _grant_actor(source: str) -> str:
    """The system actor of a grant change nobody signed: the sign-in re-sync or setup."""
    return "sso" if source == "sso" else "setup"


def role_grant_add(
    *, user, role: str, team: Team | None = None, granted_by=None, source: str = "admin"
) -> RoleGrant:
    """Give ``user`` ``role`` for ``team`` (None: organisation-wide), made by ``source``
    ("admin": stays until removed; "sso": the sign-in re-sync may take it away again).
    Granting what the person already holds changes nothing (an admin's grant stays an
    admin's) and writes no audit row."""
    if role not in ALL_ROLES:
        raise ValueError(f"unknown role: {role}")
    if role == Role.ADMIN and team is not None:
        raise ValueError("admin is held for the whole organisation, not for one team")
    if source not in GRANT_SOURCES:
        raise ValueError(f"unknown grant source: {source}")
    with audited_atomic():
        grant, created = RoleGrant.objects.get_or_create(
            user=user, role=role, team=team, defaults={"source": source}
        )
        if created:
            audit_record(
                actor=granted_by,
                system_actor=None if granted_by else _grant_actor(source),
                action="role_grant.add",
                target_type="user",
                target_id=user.pk,
                after={"role": role, "team": team.slug if team else None, "source": source},
            )
    forget_grants(user)
    return grant


def role_grant_remove(
    *, user, role: str, team: Team | None = None, removed_by=None, source: str | None = None
) -> bool:
    """Take ``role`` for ``team`` away from ``user``; audited when something was held.
    With ``source``, only a grant that source made goes: the sign-in re-sync removes its
    own grants and never an admin's. Returns whether a grant went."""
    grants = RoleGrant.objects.filter(user=user, role=role, team=team)
    if source is not None:
        if source not in GRANT_SOURCES:
            raise ValueError(f"unknown grant source: {source}")
        grants = grants.filter(source=source)
    with audited_atomic():
        grant = grants.select_for_update().first()  # at most one: unique per user/role/team
        if grant is not None:
            grant.delete()
            audit_record(
                actor=removed_by,
                system_actor=None if removed_by else _grant_actor(source or "admin"),
                action="role_grant.remove",
                target_type="user",
                target_id=user.pk,
                before={"role": role, "team": team.slug if team else None, "source": grant.source},
            )
    forget_grants(user)
    return grant is not None
