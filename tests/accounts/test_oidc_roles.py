"""The group claim -> role mapping (apps/accounts/oidc.py) and the role re-sync service."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from apps.accounts.oidc import claim_groups, org_roles, roles_from_claims, team_grants
from apps.accounts.roles import has_role_for, user_roles
from apps.accounts.services import role_grant_add, role_grant_remove
from apps.accounts.signin import user_sync_sso_roles
from apps.audit.models import AuditEvent
from tests import factories

ROLE_MAP = {
    "slipway-admins": "admin",
    "churn-reviewers": ["product-reviewer@churn", "oncall"],
    "/org/compliance": "compliance-reviewer",
}


def test_groups_map_to_org_and_team_roles():
    claims = {"groups": ["slipway-admins", "churn-reviewers", "unmapped"]}
    grants = roles_from_claims(claims, role_map=ROLE_MAP)
    assert grants == {("admin", None), ("product-reviewer", "churn"), ("oncall", None)}
    assert org_roles(grants) == {"admin", "oncall"}
    assert team_grants(grants) == {("product-reviewer", "churn")}


@pytest.mark.parametrize(
    "claims, expected",
    [
        ({}, set()),
        ({"groups": []}, set()),
        ({"groups": ["nobody-knows-this"]}, set()),
        ({"groups": "slipway-admins"}, {("admin", None)}),  # a single string
        ({"groups": ["/org/compliance"]}, {("compliance-reviewer", None)}),  # Keycloak paths
        ({"groups": {"not": "a list"}}, set()),
        ({"groups": 7}, set()),
    ],
)
def test_claim_shapes(claims, expected):
    assert roles_from_claims(claims, role_map=ROLE_MAP) == expected


def test_the_claim_name_is_a_setting(settings):
    settings.SLIPWAY_OIDC_GROUPS_CLAIM = "roles"
    assert claim_groups({"roles": ["a"], "groups": ["b"]}) == ["a"]


@pytest.mark.parametrize(
    "role_map, fragment",
    [
        ({"g": "superuser"}, "names the role 'superuser'"),
        ({"g": "oncall@Not A Slug"}, "not a team slug"),
        ({"g": "admin@churn"}, "admin is held for the whole organisation"),
        (["admin"], "must be a JSON object"),
    ],
)
def test_a_bad_role_map_names_the_problem(role_map, fragment):
    with pytest.raises(ImproperlyConfigured, match=fragment):
        roles_from_claims({"groups": ["g"]}, role_map=role_map)


@pytest.mark.django_db
def test_resync_replaces_roles_and_audits_only_changes():
    sam = factories.make_user("sam", roles={"oncall"})
    grants = roles_from_claims({"groups": ["slipway-admins"]}, role_map=ROLE_MAP)
    assert user_sync_sso_roles(user=sam, grants=grants, groups=["slipway-admins"]) is True
    assert user_roles(sam) == {"admin"}
    assert user_sync_sso_roles(user=sam, grants=grants, groups=["slipway-admins"]) is False
    assert user_sync_sso_roles(user=sam, grants=set(), groups=["unmapped"]) is True
    assert user_roles(sam) == frozenset()
    events = AuditEvent.objects.filter(action="user.roles").order_by("id")
    assert [(e.before["roles"], e.after["roles"]) for e in events] == [
        (["oncall"], ["admin"]),
        (["admin"], []),
    ]
    assert events.last().after["groups"] == ["unmapped"]


@pytest.mark.django_db
def test_team_roles_follow_the_providers_groups_and_leave_admin_grants_alone():
    churn = factories.make_team("churn")
    risk = factories.make_team("risk-ml")
    sam = factories.make_user("sam", roles=set())
    factories.grant(sam, "oncall", risk)  # made by an admin: SSO never takes it away
    reviewers = roles_from_claims({"groups": ["churn-reviewers"]}, role_map=ROLE_MAP)

    assert user_sync_sso_roles(user=sam, grants=reviewers, groups=["churn-reviewers"]) is True
    assert has_role_for(sam, "product-reviewer", churn)
    assert not has_role_for(sam, "product-reviewer", risk)
    assert user_sync_sso_roles(user=sam, grants=reviewers, groups=["churn-reviewers"]) is False

    # The group is removed at the provider: the next sign-in takes the team role away.
    assert user_sync_sso_roles(user=sam, grants=set(), groups=[]) is True
    assert not has_role_for(sam, "product-reviewer", churn)
    assert has_role_for(sam, "oncall", risk)
    # Through the grant services: one audit row per grant, by the sign-in re-sync.
    events = AuditEvent.objects.filter(action__startswith="role_grant.").order_by("id")
    assert [(e.action, e.actor_label, e.after or e.before) for e in events] == [
        (
            "role_grant.add",
            "system:setup",
            {"role": "oncall", "team": "risk-ml", "source": "admin"},
        ),
        (
            "role_grant.add",
            "system:sso",
            {"role": "product-reviewer", "team": "churn", "source": "sso"},
        ),
        (
            "role_grant.remove",
            "system:sso",
            {"role": "product-reviewer", "team": "churn", "source": "sso"},
        ),
    ]


@pytest.mark.django_db
def test_an_admin_grant_the_provider_also_names_stays_the_admins():
    churn = factories.make_team("churn")
    sam = factories.make_user("sam", roles=set())
    factories.grant(sam, "product-reviewer", churn)  # an admin's, before SSO named it
    reviewers = roles_from_claims({"groups": ["churn-reviewers"]}, role_map=ROLE_MAP)

    # The provider names the same grant: nothing to add, and it stays the admin's ...
    assert user_sync_sso_roles(user=sam, grants=reviewers, groups=["churn-reviewers"]) is True
    grant = sam.role_grants.get(team=churn)
    assert grant.source == "admin"
    # ... so the provider dropping the group does not take it away.
    assert user_sync_sso_roles(user=sam, grants=set(), groups=[]) is True  # oncall went
    assert has_role_for(sam, "product-reviewer", churn)
    assert not AuditEvent.objects.filter(
        action="role_grant.remove", actor_label="system:sso"
    ).exists()


@pytest.mark.django_db
def test_removing_by_source_leaves_another_sources_grant():
    churn = factories.make_team("churn")
    sam = factories.make_user("sam", roles=set())
    role_grant_add(user=sam, role="oncall", team=churn)
    assert role_grant_remove(user=sam, role="oncall", team=churn, source="sso") is False
    assert has_role_for(sam, "oncall", churn)
    assert role_grant_remove(user=sam, role="oncall", team=churn) is True
    assert not has_role_for(sam, "oncall", churn)
    with pytest.raises(ValueError, match="unknown grant source"):
        role_grant_add(user=sam, role="oncall", team=churn, source="ldap")
    assert not sam.role_grants.exists()


@pytest.mark.django_db
def test_a_team_slipway_does_not_have_grants_nothing():
    sam = factories.make_user("sam", roles=set())
    grants = {("product-reviewer", "no-such-team")}
    assert user_sync_sso_roles(user=sam, grants=grants, groups=["x"]) is False
    assert not sam.role_grants.exists()
