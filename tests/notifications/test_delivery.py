"""Delivery through real local servers: an HTTP receiver for the Slack-compatible and
the generic (HMAC-signed) webhook, aiosmtpd for e-mail; and the faults: a receiver that
answers 500, one that never answers, a 4xx, an SMTP server that refuses or is down."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.audit.services import audited_atomic
from apps.notifications.events import Channel, DeliveryState, EventKind
from apps.notifications.models import Delivery, TeamChannel
from apps.notifications.selectors import deliveries_due
from apps.notifications.services import delivery_attempt, delivery_retry, notification_emit
from apps.releases import services
from tests import factories
from tests.fixtures.network import free_port

pytestmark = [pytest.mark.django_db]


def _team_channel(channel: str, destination: str, **fields) -> TeamChannel:
    return TeamChannel.objects.create(
        team="growth-ml", channel=channel, destination=destination, **fields
    )


def _emit(**fields) -> Delivery:
    """One event for growth-ml's channel(s); returns the (first) delivery."""
    with audited_atomic():
        notification = notification_emit(
            kind=fields.pop("kind", EventKind.DEPLOY_FAILED),
            title=fields.pop("title", "Deploy of churn-model v3 in prod failed"),
            text=fields.pop("text", "ImagePullBackOff"),
            path=fields.pop("path", "/releases/7/"),
            team="growth-ml",
            **fields,
        )
    return notification.deliveries.order_by("pk").first() if notification else None


def test_slack_webhook_gets_text_with_the_deep_link(
    people, service, staging, receiver, deliver_all
):
    _team_channel(Channel.SLACK, receiver.url)
    receiver.secret = ""  # Slack webhooks are not signed: the URL is the secret
    promotion = factories.pending_promotion(service, staging, requester=people["alice"])
    services.release_reject(actor=people["carol"], release=promotion, comment="no model card")

    outcomes = deliver_all()
    slack = Delivery.objects.get(channel=Channel.SLACK, notification__kind="release_rejected")
    assert outcomes[slack.pk] == "delivered"
    (body,) = [b for b in receiver.bodies() if "rejected" in b["text"]]
    link = f"https://slipway.example.com/releases/{promotion.pk}/"
    assert f"<{link}|Open in Slipway>" in body["text"]
    assert "no model card" in body["text"]
    assert body["blocks"][0]["type"] == "section"
    slack.refresh_from_db()
    assert slack.state == DeliveryState.DELIVERED and slack.delivered_at is not None
    assert body["event_id"] == str(slack.notification.event_id)


def test_generic_webhook_is_signed_and_carries_a_stable_event_id(db, receiver):
    assert _emit() is None  # nobody listens yet: nothing is written

    _team_channel(Channel.WEBHOOK, receiver.url)
    delivery = _emit(context={"release_id": 7})
    assert delivery_attempt(delivery_id=delivery.pk) == "delivered"

    (request,) = receiver.requests
    assert receiver.rejected_signatures == 0  # verified as docs/notifications.md says
    event_id = str(delivery.notification.event_id)
    assert request.headers["idempotency-key"] == event_id
    assert request.json() == {
        "event_id": event_id,
        "kind": "deploy_failed",
        "title": "Deploy of churn-model v3 in prod failed",
        "text": "ImagePullBackOff",
        "url": "https://slipway.example.com/releases/7/",
        "created_at": delivery.notification.created_at.isoformat(),
        "context": {"release_id": 7},
    }
    assert receiver.acted == [event_id]


def test_a_wrong_secret_is_refused_by_the_receiver_and_not_retried(db, receiver, settings):
    settings.NOTIFICATIONS_WEBHOOK_SECRET = "not-what-the-receiver-knows"
    _team_channel(Channel.WEBHOOK, receiver.url)
    delivery = _emit()
    assert delivery_attempt(delivery_id=delivery.pk) == "failed"
    delivery.refresh_from_db()
    assert receiver.rejected_signatures == 1
    assert "answered 401" in delivery.last_error and delivery.attempts == 1


def test_no_secret_configured_sends_nothing_unsigned(db, receiver, settings):
    settings.NOTIFICATIONS_WEBHOOK_SECRET = ""
    _team_channel(Channel.WEBHOOK, receiver.url)
    delivery = _emit()
    assert delivery_attempt(delivery_id=delivery.pk) == "failed"
    delivery.refresh_from_db()
    assert "NOTIFICATIONS_WEBHOOK_SECRET is not set" in delivery.last_error
    assert receiver.requests == []


def test_a_500_is_retried_with_backoff_then_failed_after_n_attempts_and_resent_by_an_admin(
    people, receiver, settings
):
    settings.NOTIFICATIONS_MAX_ATTEMPTS = 3
    settings.NOTIFICATIONS_BACKOFF_BASE_SECONDS = 30
    receiver.status = 500
    _team_channel(Channel.WEBHOOK, receiver.url)
    delivery = _emit()

    start = timezone.now()
    assert delivery_attempt(delivery_id=delivery.pk, now=start) == "retry"
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.PENDING and delivery.attempts == 1
    assert "answered 500" in delivery.last_error
    wait = (delivery.next_attempt_at - start).total_seconds()
    assert 30 * 0.8 - 1 <= wait <= 30 + 1  # base, with at most 20 % jitter
    # Not due yet: a duplicate message or an eager sweep does not send early.
    assert delivery_attempt(delivery_id=delivery.pk, now=start) == "skipped"
    assert delivery.pk not in deliveries_due(now=start)
    assert delivery.pk in deliveries_due(now=delivery.next_attempt_at)

    second = delivery.next_attempt_at
    assert delivery_attempt(delivery_id=delivery.pk, now=second) == "retry"
    delivery.refresh_from_db()
    assert 60 * 0.8 - 1 <= (delivery.next_attempt_at - second).total_seconds() <= 60 + 1

    assert delivery_attempt(delivery_id=delivery.pk, now=delivery.next_attempt_at) == "failed"
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.FAILED and delivery.attempts == 3
    assert delivery.last_error.startswith("attempt 3: the receiver answered 500")
    assert len(receiver.requests) == 3 and receiver.acted == []
    assert delivery.pk not in deliveries_due(now=timezone.now() + timedelta(days=1))

    # The receiver is fixed; an admin sends it again: nothing was lost.
    receiver.status = 200
    assert delivery_retry(actor=people["ada"], delivery_ids=[delivery.pk]) == 1
    assert delivery_attempt(delivery_id=delivery.pk) == "delivered"
    assert receiver.acted == [str(delivery.notification.event_id)]


def test_a_receiver_that_never_answers_times_out_and_is_retried(db, silent_port, settings):
    settings.NOTIFICATIONS_TIMEOUT_SECONDS = 1
    _team_channel(Channel.SLACK, f"http://127.0.0.1:{silent_port}/hook")
    delivery = _emit()
    started = timezone.now()
    assert delivery_attempt(delivery_id=delivery.pk) == "retry"
    assert (timezone.now() - started).total_seconds() < 10
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.PENDING
    assert delivery.last_error == "attempt 1: no answer within 1 s"


def test_a_4xx_is_not_retried(db, receiver):
    receiver.status = 404
    _team_channel(Channel.SLACK, receiver.url)
    delivery = _emit()
    assert delivery_attempt(delivery_id=delivery.pk) == "failed"
    delivery.refresh_from_db()
    assert "answered 404" in delivery.last_error and len(receiver.requests) == 1


def test_email_through_a_real_smtp_server(people, service, staging, mailbox, deliver_all):
    promotion = factories.pending_promotion(service, staging, requester=people["alice"])
    outcomes = deliver_all()
    assert set(outcomes.values()) == {"delivered"}
    got = {m["to"][0]: m for m in mailbox.messages}
    assert set(got) == {
        "pat@example.com",
        "paula@example.com",
        "carol@example.com",
        "dual@example.com",
    }
    message = got["carol@example.com"]
    assert message["subject"].startswith("[Slipway] churn-model v1 in prod waits for your")
    assert f"https://slipway.example.com/releases/{promotion.pk}/" in message["body"]
    delivery = Delivery.objects.get(destination="carol@example.com")
    event_id = str(delivery.notification.event_id)
    assert message["event_id"] == event_id
    assert message["message_id"].startswith(f"<{event_id}.")


def test_an_smtp_server_that_refuses_fails_the_delivery_with_its_answer(db, people, mailbox):
    mailbox.refuse = True
    with audited_atomic():
        notification = notification_emit(
            kind=EventKind.DEPLOY_FAILED, title="t", path="/", users=[people["alice"]]
        )
    (delivery,) = notification.deliveries.all()
    assert delivery_attempt(delivery_id=delivery.pk) == "failed"
    delivery.refresh_from_db()
    assert "550" in delivery.last_error and "Relaying denied" in delivery.last_error
    assert mailbox.messages == []


def test_an_smtp_server_that_is_down_is_retried(db, people, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()
    with audited_atomic():
        notification = notification_emit(
            kind=EventKind.DEPLOY_FAILED, title="t", path="/", users=[people["alice"]]
        )
    (delivery,) = notification.deliveries.all()
    assert delivery_attempt(delivery_id=delivery.pk) == "retry"
    delivery.refresh_from_db()
    assert "cannot send mail" in delivery.last_error


def test_the_sweep_finds_lost_first_attempts_and_dead_workers_claims(db, receiver, settings):
    settings.NOTIFICATIONS_SWEEP_GRACE_SECONDS = 60
    settings.NOTIFICATIONS_LEASE_SECONDS = 120
    _team_channel(Channel.WEBHOOK, receiver.url)
    lost = _emit()
    now = timezone.now()
    # Its on-commit message may still be on its way: not yet.
    assert lost.pk not in deliveries_due(now=now)
    assert lost.pk in deliveries_due(now=now + timedelta(seconds=61))

    # A worker claimed it and died: the row says sending until the claim runs out.
    Delivery.objects.filter(pk=lost.pk).update(
        state=DeliveryState.SENDING, attempts=1, claimed_until=now + timedelta(seconds=120)
    )
    assert delivery_attempt(delivery_id=lost.pk, now=now) == "skipped"
    assert lost.pk not in deliveries_due(now=now)
    later = now + timedelta(seconds=121)
    assert lost.pk in deliveries_due(now=later)
    assert delivery_attempt(delivery_id=lost.pk, now=later) == "delivered"
    lost.refresh_from_db()
    assert lost.attempts == 2 and lost.state == DeliveryState.DELIVERED


def test_one_destination_gets_an_event_once_even_if_it_is_listed_twice(db, people, receiver):
    from apps.notifications.services import preference_update

    preference_update(
        actor=people["otto"], events=EventKind.values, email=False, slack_url=receiver.url
    )
    _team_channel(Channel.SLACK, receiver.url)
    with audited_atomic():
        notification = notification_emit(
            kind=EventKind.DEPLOY_FAILED,
            title="t",
            path="/",
            users=[people["otto"], people["otto"]],
            team="growth-ml",
        )
    assert notification.deliveries.count() == 1
