"""Roles are Django groups with Slipway's names: who holds which, what each may see in
the admin, and every change of someone's roles in the audit log."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from apps.accounts.roles import Role, has_role, user_roles
from apps.accounts.services import roles_ensure_groups, user_set_roles
from apps.audit.models import AuditEvent
from tests import factories

pytestmark = pytest.mark.django_db


def test_setting_roles_replaces_them_keeps_other_groups_and_is_audited(alice, ada):
    other, _ = Group.objects.get_or_create(name="book-club")
    alice.groups.add(other)
    user_set_roles(user=alice, roles={Role.ONCALL, Role.PRODUCT_REVIEWER}, changed_by=ada)
    alice.refresh_from_db()
    assert user_roles(alice) == {Role.ONCALL, Role.PRODUCT_REVIEWER}
    assert alice.groups.filter(name="book-club").exists()
    event = AuditEvent.objects.get(action="user.roles", target_id=str(alice.pk))
    assert event.actor_label == "ada"
    assert event.before == {"roles": [Role.ML_ENGINEER]}
    assert event.after == {"roles": sorted([Role.ONCALL, Role.PRODUCT_REVIEWER])}


def test_an_unknown_role_changes_nothing(alice):
    with pytest.raises(ValueError, match="unknown roles"):
        user_set_roles(user=alice, roles={Role.ADMIN, "god"})
    alice.refresh_from_db()
    assert user_roles(alice) == {Role.ML_ENGINEER}
    assert not AuditEvent.objects.filter(action="user.roles").exists()


def test_a_superuser_is_an_admin_and_a_deactivated_person_has_no_role(db):
    root = factories.make_user("root", roles=set())
    root.is_superuser = True
    root.save(update_fields=["is_superuser"])
    assert user_roles(root) == {Role.ADMIN}
    otto = factories.make_user("otto")
    otto.is_active = False
    otto.save(update_fields=["is_active"])
    assert user_roles(otto) == frozenset()
    assert not has_role(otto, Role.ONCALL)


def test_admins_manage_the_setup_and_only_admins_and_compliance_read_the_audit_log(db):
    roles_ensure_groups()
    roles_ensure_groups()  # runs after every migrate: twice changes nothing

    def codenames(role):
        return set(Group.objects.get(name=role).permissions.values_list("codename", flat=True))

    assert {"change_service", "add_environment", "view_auditevent"} <= codenames(Role.ADMIN)
    assert codenames(Role.COMPLIANCE_REVIEWER) == {"view_auditevent"}
    for role in (Role.ML_ENGINEER, Role.PRODUCT_REVIEWER, Role.ONCALL):
        assert "view_auditevent" not in codenames(role), role
