"""Admin changes to people, roles, teams, grants and tokens are written to the audit
chain like every other change, in the same transaction."""

from __future__ import annotations

import html
import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.urls import reverse

from apps.accounts.models import RoleGrant, Team
from apps.accounts.roles import Role, has_role_for
from apps.accounts.services import api_token_create
from apps.audit.models import AuditEvent
from apps.audit.selectors import audit_chain_verify
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, people):
    ada = people["ada"]
    ada.is_superuser = True
    ada.save(update_fields=["is_superuser"])
    client.force_login(ada)
    return client


def _inline(prefix: str) -> dict:
    return {
        f"{prefix}-TOTAL_FORMS": "0",
        f"{prefix}-INITIAL_FORMS": "0",
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }


def test_creating_a_team_with_its_grants_is_audited(admin_client, people):
    response = admin_client.post(
        reverse("admin:accounts_team_add"),
        {
            "slug": "risk-ml",
            "name": "Risk ML",
            **_inline("grants"),
            "grants-TOTAL_FORMS": "1",
            "grants-0-user": people["paula"].pk,
            "grants-0-role": Role.PRODUCT_REVIEWER,
        },
    )
    assert response.status_code == 302, response.content.decode()[-2000:]
    team = Team.objects.get(slug="risk-ml")
    assert has_role_for(people["paula"], Role.PRODUCT_REVIEWER, team)
    created = AuditEvent.objects.get(action="team.create")
    assert created.actor_label == "ada" and created.after["slug"] == "risk-ml"
    grants = AuditEvent.objects.get(action="role_grant.change")
    assert grants.after == {"grants": ["paula product-reviewer of risk-ml"]}
    assert audit_chain_verify()[1] is None  # the chain verifies: no broken row


def test_a_bad_team_slug_is_a_form_error(admin_client):
    response = admin_client.post(
        reverse("admin:accounts_team_add"), {"slug": "Risk ML", "name": "", **_inline("grants")}
    )
    assert response.status_code == 200
    assert "lowercase letters, digits" in response.content.decode()
    assert not Team.objects.exists() and not AuditEvent.objects.exists()


def test_a_grant_added_and_deleted_in_the_admin_is_audited(admin_client, people):
    team = factories.make_team("risk-ml")
    response = admin_client.post(
        reverse("admin:accounts_rolegrant_add"),
        {"user": people["otto"].pk, "role": Role.ONCALL, "team": team.pk},
    )
    assert response.status_code == 302, response.content.decode()[-2000:]
    grant = RoleGrant.objects.get(user=people["otto"], team=team)
    added = AuditEvent.objects.get(action="rolegrant.create")
    assert added.after == {"user": "otto", "role": "oncall", "team": "risk-ml"}
    response = admin_client.post(
        reverse("admin:accounts_rolegrant_delete", args=[grant.pk]), {"post": "yes"}
    )
    assert response.status_code == 302
    deleted = AuditEvent.objects.get(action="rolegrant.delete")
    assert deleted.before == {"was": "otto oncall of risk-ml"}


def test_an_admin_grant_for_one_team_is_refused(admin_client, people):
    team = factories.make_team("risk-ml")
    response = admin_client.post(
        reverse("admin:accounts_rolegrant_add"),
        {"user": people["otto"].pk, "role": Role.ADMIN, "team": team.pk},
    )
    assert response.status_code == 200
    assert "Admin is held for the whole organisation" in response.content.decode()
    assert not RoleGrant.objects.exists()


def test_changing_a_persons_groups_and_flags_is_audited(admin_client, people):
    alice = people["alice"]
    oncall = Group.objects.get(name=Role.ONCALL)
    response = admin_client.post(
        reverse("admin:auth_user_change", args=[alice.pk]),
        {
            "username": "alice",
            "email": "alice@example.com",
            "is_active": "on",
            "is_staff": "on",
            "groups": [oncall.pk],
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
            **_inline("role_grants"),
        },
    )
    assert response.status_code == 302, response.content.decode()[-2000:]
    roles = AuditEvent.objects.get(action="user.roles", target_id=str(alice.pk))
    assert roles.before == {"roles": ["ml-engineer"]} and roles.after == {"roles": ["oncall"]}
    change = AuditEvent.objects.get(action="user.change", target_id=str(alice.pk))
    assert change.actor_label == "ada" and change.after["is_staff"] is True


def test_adding_a_person_in_the_admin_is_audited(admin_client):
    response = admin_client.post(
        reverse("admin:auth_user_add"),
        {
            "username": "newbie",
            "usable_password": "true",
            "password1": "a-new-Long-passphrase-9",
            "password2": "a-new-Long-passphrase-9",
        },
    )
    assert response.status_code == 302, response.content.decode()[-2000:]
    newbie = get_user_model().objects.get(username="newbie")
    event = AuditEvent.objects.get(action="user.create", target_id=str(newbie.pk))
    assert event.actor_label == "ada"
    assert "passphrase" not in str(event.after)


def test_setting_a_password_in_the_admin_is_audited_without_the_password(admin_client, people):
    alice = people["alice"]
    response = admin_client.post(
        reverse("admin:auth_user_password_change", args=[alice.pk]),
        {"password1": "a-new-Long-passphrase-9", "password2": "a-new-Long-passphrase-9"},
    )
    assert response.status_code == 302, response.content.decode()[-2000:]
    event = AuditEvent.objects.get(action="user.password", target_id=str(alice.pk))
    assert event.actor_label == "ada"
    assert "passphrase" not in str(event.before) + str(event.after)


def _shown_value(client, token, field: str) -> str:
    """What the change page shows in ``field``'s text area, posted back as a person would."""
    page = client.get(reverse("admin:accounts_apitoken_change", args=[token.pk])).content.decode()
    match = re.search(rf'<textarea name="{field}"[^>]*>(.*?)</textarea>', page, re.S)
    assert match, f"no {field} field on the token's admin page"
    return html.unescape(match.group(1)).strip()


def _hidden_initial(client, token, field: str) -> str:
    page = client.get(reverse("admin:accounts_apitoken_change", args=[token.pk])).content.decode()
    match = re.search(rf'<input type="hidden" name="initial-{field}" value="([^"]*)"', page)
    assert match, f"no hidden initial {field} on the token's admin page"
    return html.unescape(match.group(1))


def test_revoking_a_token_in_the_admin_is_audited(admin_client, people):
    token, _raw = api_token_create(user=people["alice"], name="ci")
    response = admin_client.post(
        reverse("admin:accounts_apitoken_change", args=[token.pk]),
        {
            "user": people["alice"].pk,
            "name": "ci",
            # As a browser posts it: the field and, for a field with a callable default,
            # Django's hidden copy of its initial value, which decides "changed".
            "scopes": _shown_value(admin_client, token, "scopes"),
            "initial-scopes": _hidden_initial(admin_client, token, "scopes"),
            "revoked_at_0": "2026-01-01",
            "revoked_at_1": "00:00:00",
        },
    )
    assert response.status_code == 302, response.content.decode()[-2000:]
    event = AuditEvent.objects.get(action="apitoken.change")
    assert event.after["revoked"] is True and event.after["changed"] == ["revoked_at"]


def test_changing_a_groups_permissions_is_audited(admin_client):
    group = Group.objects.get(name=Role.ONCALL)
    response = admin_client.post(
        reverse("admin:auth_group_change", args=[group.pk]),
        {"name": Role.ONCALL, "permissions": []},
    )
    assert response.status_code == 302, response.content.decode()[-2000:]
    event = AuditEvent.objects.get(action="group.permissions")
    assert event.after == {"name": "oncall", "permissions": []}
