"""Setup changes in the Django admin are audited, in a transaction that opens with the
audit chain lock (the admin's own atomic nests inside it)."""

import pytest
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.audit.selectors import audit_chain_verify
from apps.releases.models import Environment, FreezeWindow, Service
from tests import factories

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def admin_client_ada(client, people):
    ada = people["ada"]
    ada.is_staff = ada.is_superuser = True
    ada.save()
    client.force_login(ada)
    return client


def test_changing_an_environment_in_the_admin_is_audited(admin_client_ada, environments):
    staging, _prod = environments
    url = reverse("admin:releases_environment_change", args=[staging.pk])
    response = admin_client_ada.post(
        url,
        {
            "name": "staging",
            "order": 1,
            "min_soak_minutes": 5,
            "bake_minutes": staging.bake_minutes,
            "kserve_mode": staging.kserve_mode,
            "kserve_version": staging.kserve_version,
            "shadow_evaluation": staging.shadow_evaluation,
            "approval_rules-TOTAL_FORMS": 0,
            "approval_rules-INITIAL_FORMS": 0,
            "approval_rules-MIN_NUM_FORMS": 0,
            "approval_rules-MAX_NUM_FORMS": 1000,
        },
    )
    errors = response.context and response.context["adminform"].form.errors
    assert response.status_code == 302, errors
    assert Environment.objects.get(pk=staging.pk).min_soak_minutes == 5
    event = AuditEvent.objects.get(action="environment.change")
    assert event.actor_label == "ada" and "min_soak_minutes" in event.after["changed"]
    assert audit_chain_verify()[1] is None


def _environment_form(environment, **fields) -> dict:
    """The change form's fields other than the checkboxes, as the page posts them."""
    return {
        "name": environment.name,
        "order": environment.order,
        "min_soak_minutes": environment.min_soak_minutes,
        "bake_minutes": environment.bake_minutes,
        "kserve_mode": environment.kserve_mode,
        "kserve_version": environment.kserve_version,
        "shadow_evaluation": environment.shadow_evaluation,
        "approval_rules-TOTAL_FORMS": 0,
        "approval_rules-INITIAL_FORMS": 0,
        "approval_rules-MIN_NUM_FORMS": 0,
        "approval_rules-MAX_NUM_FORMS": 1000,
        **fields,
    }


def test_a_checkbox_the_form_did_not_carry_keeps_its_value(admin_client_ada, environments):
    staging, _prod = environments
    Environment.objects.filter(pk=staging.pk).update(freeze_on_alerts=True, auto_rollback=True)
    url = reverse("admin:releases_environment_change", args=[staging.pk])

    # The page marks each checkbox it shows, so an unticked one is told from a missing one.
    page = admin_client_ada.get(url).content.decode()
    assert 'name="freeze_on_alerts__shown"' in page and 'name="auto_rollback__shown"' in page

    # A form without the freeze and guard boxes (and their marks) changes only what it has.
    response = admin_client_ada.post(url, _environment_form(staging, min_soak_minutes=7))
    assert response.status_code == 302, (
        response.context and response.context["adminform"].form.errors
    )
    saved = Environment.objects.get(pk=staging.pk)
    assert saved.min_soak_minutes == 7
    assert saved.freeze_on_alerts is True and saved.auto_rollback is True
    event = AuditEvent.objects.filter(action="environment.change").latest("id")
    assert event.after["changed"] == ["min_soak_minutes"]


def test_unticking_a_shown_checkbox_still_turns_it_off(admin_client_ada, environments):
    staging, _prod = environments
    url = reverse("admin:releases_environment_change", args=[staging.pk])
    shown = {
        f"{name}__shown": "1" for name in ("is_production", "auto_rollback", "freeze_on_alerts")
    }

    response = admin_client_ada.post(url, _environment_form(staging, **shown))
    assert response.status_code == 302
    assert Environment.objects.get(pk=staging.pk).freeze_on_alerts is False
    event = AuditEvent.objects.filter(action="environment.change").latest("id")
    assert event.after["changed"] == ["freeze_on_alerts"]

    ticked = _environment_form(staging, **shown, freeze_on_alerts="on", auto_rollback="on")
    assert admin_client_ada.post(url, ticked).status_code == 302
    saved = Environment.objects.get(pk=staging.pk)
    assert saved.freeze_on_alerts is True and saved.auto_rollback is True
    assert saved.is_production is False


def test_a_new_environment_without_the_boxes_gets_the_defaults(admin_client_ada, environments):
    url = reverse("admin:releases_environment_add")
    response = admin_client_ada.post(url, _environment_form(Environment(name="qa", order=3)))
    assert response.status_code == 302, (
        response.context and response.context["adminform"].form.errors
    )
    qa = Environment.objects.get(name="qa")
    assert qa.freeze_on_alerts is True and qa.auto_rollback is False


def test_deleting_a_service_in_the_admin_is_audited(admin_client_ada):
    service = factories.make_service("to-delete")
    url = reverse("admin:releases_service_delete", args=[service.pk])
    response = admin_client_ada.post(url, {"post": "yes"})
    assert response.status_code == 302
    assert not Service.objects.filter(pk=service.pk).exists()
    assert AuditEvent.objects.filter(action="service.delete", target_id=str(service.pk)).exists()


def test_freeze_windows_are_managed_in_the_admin_with_field_errors_and_audit(
    admin_client_ada, environments
):
    _staging, prod = environments
    url = reverse("admin:releases_freezewindow_add")
    weekend = {
        "reason": "Weekend change freeze",
        "environment": prod.pk,
        "enabled": "on",
        "time_zone": "Europe/London",
        "start_date": "2026-01-03",
        "start_time": "00:00",
        "recurrence": "FREQ=WEEKLY;BYDAY=SA",
        "duration": "2 06:00:00",
    }
    # A rule dateutil cannot read and an unknown zone: the form says which, no 500.
    refused = admin_client_ada.post(
        url, {**weekend, "recurrence": "FREQ=WEEKLY;BYDAY=XX", "time_zone": "Mars/Base"}
    )
    assert refused.status_code == 200
    errors = refused.context["adminform"].form.errors
    assert "IANA" in errors["time_zone"][0]
    assert not FreezeWindow.objects.exists()
    refused = admin_client_ada.post(url, {**weekend, "recurrence": "FREQ=WEEKLY;BYDAY=XX"})
    assert "RRULE" in refused.context["adminform"].form.errors["recurrence"][0]

    created = admin_client_ada.post(url, weekend)
    assert created.status_code == 302
    window = FreezeWindow.objects.get()
    assert window.duration.total_seconds() == 54 * 3600
    event = AuditEvent.objects.get(action="freezewindow.create")
    assert event.actor_label == "ada" and event.target_id == str(window.pk)
    listing = admin_client_ada.get(reverse("admin:releases_freezewindow_changelist"))
    assert "FREQ=WEEKLY;BYDAY=SA from 2026-01-03 00:00" in listing.content.decode()
