"""Freezes enforced: a request into a frozen environment is refused saying why and until
when (pages and API), a freeze that begins after the approval holds the release at the
commit (against real git), break-glass by on-call or an admin is audited, and rollbacks
are never frozen."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from apps.audit.models import AuditEvent
from apps.core.errors import Conflict, DomainError, Forbidden
from apps.releases import services
from apps.releases.deploy import Deployed, deploy_pending
from apps.releases.freeze import any_ready_to_commit, freeze_status, upcoming
from apps.releases.freeze_rules import local_date_time
from apps.releases.models import FreezeWindow, Release, ReleaseKind, ReleaseState
from apps.releases.selectors import releases_awaiting_commit
from tests import factories

REASON = "Year-end change freeze"


def freeze_now(environment=None, *, reason=REASON, zone="Europe/Paris", hours=3):
    """A one-off window that began an hour ago and ends ``hours`` from now, written in
    ``zone``'s wall-clock time as an admin would type it."""
    now = timezone.now()
    start_date, start_time = local_date_time(now - timedelta(hours=1), zone)
    end_date, end_time = local_date_time(now + timedelta(hours=hours), zone)
    window = FreezeWindow(
        environment=environment,
        reason=reason,
        time_zone=zone,
        start_date=start_date,
        start_time=start_time.replace(microsecond=0),
        end_date=end_date,
        end_time=end_time.replace(microsecond=0),
    )
    window.full_clean()
    window.save()
    return window


def _as(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def soaked(service, staging, alice):
    """v1 live in staging and soaked: ready to be promoted to prod."""
    factories.make_model_version(service.registered_model, 1)
    source = factories.live_release(service, staging, 1, requester=alice)
    return factories.backdate_live(source)


@pytest.fixture
def writer(gitops_remote, make_git_writer):
    return make_git_writer(gitops_remote.url)


def test_a_promotion_into_a_frozen_environment_is_refused_with_why_and_until_when(
    soaked, prod, alice
):
    window = freeze_now(prod)
    with pytest.raises(Conflict) as refused:
        services.release_promote(actor=alice, source=soaked, reason="ship it")
    until = freeze_status(prod).calendar_until
    message = refused.value.message
    assert REASON in message
    assert f"until {until:%Y-%m-%d %H:%M} UTC" in message
    assert "Europe/Paris" in message and "break glass" in message
    assert not Release.objects.filter(environment=prod).exists()
    # Disabled, the window no longer holds anyone back.
    FreezeWindow.objects.filter(pk=window.pk).update(enabled=False)
    promotion, created = services.release_promote(actor=alice, source=soaked, reason="ship it")
    assert created and promotion.state == ReleaseState.PENDING_APPROVAL


def test_api_answers_409_with_the_reason_the_end_and_the_freeze_object(soaked, prod, alice):
    freeze_now(reason="Black Friday")  # organisation-wide
    response = _as(alice).post(
        reverse("release-promote", args=[soaked.pk]), {"reason": "ship"}, format="json"
    )
    assert response.status_code == 409
    body = response.json()
    assert "prod is frozen until" in body["detail"] and "Black Friday" in body["detail"]
    assert body["freeze"]["frozen"] is True
    assert body["freeze"]["until"] == freeze_status(prod).calendar_until.isoformat()
    assert body["freeze"]["reasons"][0]["scope"] == "every environment"
    # The release resource says so too, before anyone tries.
    resource = _as(alice).get(reverse("release-detail", args=[soaked.pk])).json()
    [target] = resource["promotion_freezes"]
    assert target["environment"] == "prod" and target["frozen"] is True
    assert target["reasons"][0]["reason"] == "Black Friday"


def test_break_glass_by_on_call_is_audited_and_still_needs_approvals(
    soaked, prod, alice, otto, pat, carol
):
    freeze_now(prod)
    url = reverse("release-promote", args=[soaked.pk])
    body = {"reason": "fix for INC-42", "break_glass": "INC-42: the fix must ship tonight"}
    # An ML engineer cannot break glass.
    denied = _as(alice).post(url, body, format="json")
    assert denied.status_code == 403 and "on-call" in denied.json()["detail"]
    first = _as(otto).post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="inc-42")
    again = _as(otto).post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="inc-42")
    assert first.status_code == 201 and again.status_code == 200
    assert first.json()["id"] == again.json()["id"]
    promotion = Release.objects.get(pk=first.json()["id"])
    assert promotion.state == ReleaseState.PENDING_APPROVAL  # the review is not skipped
    assert first.json()["freeze_override"]["by"] == "otto"
    event = AuditEvent.objects.get(action="release.freeze_override", target_id=str(promotion.pk))
    assert event.actor_label == "otto"
    assert event.after["reason"] == "INC-42: the fix must ship tonight"
    assert event.after["frozen"] is True and REASON in event.after["freezes"][0]
    # Approved during the freeze, it is not held: the glass is broken for this release.
    services.release_approve(actor=pat, release=promotion)
    services.release_approve(actor=carol, release=promotion)
    assert services.release_deploy_claim(release=promotion) is True
    # Without a break-glass reason on-call is told what is missing.
    blank = _as(otto).post(url, {"break_glass": "   "}, format="json")
    assert blank.status_code == 403 and "say why in break_glass" in blank.json()["detail"]


def test_a_freeze_that_begins_after_approval_holds_the_release_at_the_commit(
    service, staging, prod, alice, pat, carol, writer, gitops_remote
):
    promotion = factories.pending_promotion(service, staging, requester=alice)
    services.release_approve(actor=pat, release=promotion)
    # The freeze begins while the promotion waits for its last approval: the reviewer
    # may still approve, but nothing reaches the repository.
    window = freeze_now(prod)
    services.release_approve(actor=carol, release=promotion)
    promotion.refresh_from_db()
    assert promotion.state == ReleaseState.APPROVED
    before = gitops_remote.commit_count()
    assert deploy_pending(writer=writer) == [Deployed(promotion.pk, "", False)]
    assert gitops_remote.commit_count() == before
    promotion.refresh_from_db()
    assert promotion.state == ReleaseState.APPROVED
    assert promotion.status_message.startswith("Held by a freeze: prod is frozen until")
    assert (
        AuditEvent.objects.filter(action="release.held", target_id=str(promotion.pk)).count() == 1
    )
    # The status poll does not re-send the drain for a held release...
    assert not any_ready_to_commit(releases_awaiting_commit())
    # ...until the freeze ends; then the next drain commits it.
    FreezeWindow.objects.filter(pk=window.pk).update(enabled=False)
    assert any_ready_to_commit(releases_awaiting_commit())
    [done] = deploy_pending(writer=writer)
    assert done.release_id == promotion.pk and done.commit_sha
    assert gitops_remote.commit_count() == before + 1
    promotion.refresh_from_db()
    assert promotion.state == ReleaseState.DEPLOYING


def test_a_held_release_can_be_let_through_by_on_call_with_a_reason(
    service, staging, prod, alice, pat, carol, otto, django_capture_on_commit_callbacks
):
    promotion = factories.pending_promotion(service, staging, requester=alice)
    freeze_now(prod)
    for reviewer in (pat, carol):
        services.release_approve(actor=reviewer, release=promotion)
    assert services.release_deploy_claim(release=promotion) is False
    with pytest.raises(Forbidden):
        services.release_freeze_override(actor=alice, release=promotion, reason="please")
    with pytest.raises(DomainError, match="Say why"):
        services.release_freeze_override(actor=otto, release=promotion, reason=" ")
    with django_capture_on_commit_callbacks() as sent:
        services.release_freeze_override(actor=otto, release=promotion, reason="INC-7 fix")
    assert len(sent) == 1  # the deploy drain, at once
    assert services.release_deploy_claim(release=promotion) is True
    assert AuditEvent.objects.filter(action="release.freeze_override").count() == 1


def test_direct_releases_are_frozen_too_but_rollbacks_never(service, staging, alice, otto):
    good = factories.live_release(service, staging, 1, requester=alice)
    bad = factories.live_release(service, staging, 2, requester=alice)
    freeze_now(reason="Company offsite")  # organisation-wide
    draft = factories.draft_release(service, staging, 3, requester=alice)
    with pytest.raises(Conflict, match=r"staging is frozen until .*Company offsite"):
        services.release_submit(actor=alice, release=draft)
    rollback = services.release_rollback(
        actor=otto, service=service, environment=staging, reason="v2 is slow"
    )
    assert rollback.kind == ReleaseKind.ROLLBACK and rollback.state == ReleaseState.APPROVED
    assert services.release_deploy_claim(release=rollback) is True
    with pytest.raises(Conflict, match="never frozen"):
        services.release_freeze_override(actor=otto, release=rollback, reason="x")
    assert (good.pk, bad.pk) == (rollback.rollback_target_id, rollback.rolled_back_release_id)


def test_release_page_shows_the_freeze_where_promotion_is_offered(
    client, soaked, prod, alice, otto
):
    freeze_now(prod)
    until = freeze_status(prod).calendar_until
    client.force_login(alice)
    page = client.get(reverse("releases:detail", args=[soaked.pk])).content.decode()
    assert 'data-testid="freeze-banner-prod"' in page
    assert REASON in page and f"{until:%Y-%m-%d %H:%M} UTC" in page
    # alice cannot break glass: her promote button is disabled.
    assert 'data-testid="promote-prod" disabled' in page
    assert 'name="break_glass"' not in page
    # The status fragment the page polls carries it too (the page keeps polling while
    # frozen, so the banner goes when the freeze ends).
    fragment = client.get(reverse("releases:status", args=[soaked.pk])).content.decode()
    assert "freeze-banner-prod" in fragment and 'hx-trigger="every 3s"' in fragment
    # otto (on call) gets the break-glass form.
    client.force_login(otto)
    page = client.get(reverse("releases:detail", args=[soaked.pk])).content.decode()
    assert 'name="break_glass"' in page and "through the freeze" in page
    response = client.post(
        reverse("releases:promote", args=[soaked.pk]),
        {"environment": "prod", "reason": "hotfix", "break_glass": "INC-9"},
    )
    promotion = Release.objects.get(environment=prod)
    assert response.status_code == 302 and promotion.freeze_override_reason == "INC-9"


def test_new_release_page_names_frozen_environments(client, staging, service, alice):
    client.force_login(alice)
    page = client.get(reverse("releases:create")).content.decode()
    assert "freeze-banner" not in page
    freeze_now(reason="Company offsite")
    page = client.get(reverse("releases:create")).content.decode()
    assert 'data-testid="freeze-banner-staging"' in page and "Company offsite" in page


def test_environments_page_lists_windows_and_status(client, prod, alice):
    window = FreezeWindow(
        environment=prod,
        reason="Weekend freeze",
        time_zone="Europe/London",
        start_date=timezone.now().date(),
        start_time=timezone.now().time().replace(hour=0, minute=0, second=0, microsecond=0),
        recurrence="FREQ=WEEKLY;BYDAY=SA",
        duration=timedelta(days=2, hours=6),
    )
    window.full_clean()
    window.save()
    client.force_login(alice)
    page = client.get(reverse("releases:environments")).content.decode()
    assert "Weekend freeze" in page and "FREQ=WEEKLY;BYDAY=SA" in page
    # In words first, for reviewers who do not read RFC 5545; the rule stays beside it.
    assert "Every Saturday at 00:00 for 2 days 6 hours, Europe/London time" in page
    next_start, _ = upcoming(window)[0]
    assert f"{next_start:%a %Y-%m-%d %H:%M}" in page  # the next occurrences, in UTC
    state = "<strong>frozen</strong>" if freeze_status(prod).frozen else "open"
    assert f'data-testid="freeze-prod">{state}' in page
