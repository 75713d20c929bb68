"""``holders_q``: "who holds this role for this team", the query the on-call and waiting
notifications ask, answered by the same rules as ``has_role_for`` asks of one person."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from apps.accounts.roles import Role, has_role_for, holders_q
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def cast():
    """One person per way of holding (or not holding) a role, for the teams churn and risk."""
    churn, risk = factories.make_team("churn"), factories.make_team("risk")
    people = {
        "group": factories.make_user("group", roles={Role.ONCALL}),
        "org_grant": factories.make_user("org_grant", roles=set()),
        "churn_grant": factories.make_user("churn_grant", roles=set()),
        "risk_grant": factories.make_user("risk_grant", roles=set()),
        # On call for risk, reviewer for churn: neither grant makes them on call for churn.
        "mixed": factories.make_user("mixed", roles=set()),
        "gone": factories.make_user("gone", roles={Role.ONCALL}),
        "root": factories.make_user("root", roles=set()),
        "nobody": factories.make_user("nobody", roles=set()),
    }
    factories.grant(people["org_grant"], Role.ONCALL)
    factories.grant(people["churn_grant"], Role.ONCALL, churn)
    factories.grant(people["risk_grant"], Role.ONCALL, risk)
    factories.grant(people["mixed"], Role.ONCALL, risk)
    factories.grant(people["mixed"], Role.PRODUCT_REVIEWER, churn)
    factories.grant(people["gone"], Role.ONCALL, churn)
    people["gone"].is_active = False
    people["gone"].save(update_fields=["is_active"])
    people["root"].is_superuser = True
    people["root"].save(update_fields=["is_superuser"])
    return people, churn, risk


def _holders(roles, team) -> set[str]:
    users = get_user_model().objects.filter(holders_q(roles, team)).distinct()
    return set(users.values_list("username", flat=True))


def test_on_call_for_a_team_is_org_wide_or_that_teams_grant(cast):
    _people, churn, risk = cast
    assert _holders([Role.ONCALL], churn) == {"group", "org_grant", "churn_grant"}
    assert _holders([Role.ONCALL], risk.pk) == {"group", "org_grant", "risk_grant", "mixed"}
    # No team: organisation-wide holders only.
    assert _holders([Role.ONCALL], None) == {"group", "org_grant"}


def test_several_roles_and_admin_by_superuser(cast):
    _people, churn, _risk = cast
    assert _holders([Role.ONCALL, Role.PRODUCT_REVIEWER], churn) == {
        "group",
        "org_grant",
        "churn_grant",
        "mixed",
    }
    assert _holders([Role.ADMIN], churn) == {"root"}
    assert _holders([Role.COMPLIANCE_REVIEWER], churn) == set()


@pytest.mark.parametrize("role", [Role.ONCALL, Role.PRODUCT_REVIEWER, Role.ADMIN])
def test_it_agrees_with_has_role_for_for_everyone(cast, role):
    people, churn, risk = cast
    for team in (churn, risk, None):
        expected = {name for name, user in people.items() if has_role_for(user, role, team)}
        assert _holders([role], team) == expected, (role, team)
