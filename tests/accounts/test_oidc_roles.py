"""The group claim -> role mapping (apps/accounts/oidc.py) and the role re-sync service."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from apps.accounts.oidc import claim_groups, org_roles, roles_from_claims, team_grants
from apps.accounts.roles import has_role_for, user_roles
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
        ({"g": "admin@Not A Slug"}, "not a team slug"),
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
    events = AuditEvent.objects.filter(action="user.team_roles").order_by("id")
    assert [(e.before["removed"], e.after["added"]) for e in events] == [
        ([], ["product-reviewer@churn"]),
        (["product-reviewer@churn"], []),
    ]


@pytest.mark.django_db
def test_a_team_slipway_does_not_have_grants_nothing():
    sam = factories.make_user("sam", roles=set())
    grants = {("product-reviewer", "no-such-team")}
    assert user_sync_sso_roles(user=sam, grants=grants, groups=["x"]) is False
    assert not sam.role_grants.exists()
