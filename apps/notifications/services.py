"""Notification actions: write an event to the outbox, attempt one delivery, retry a
failed one, save a person's preferences.

Exactly-once, as far as a network allows: ``notification_emit`` runs inside the caller's
transaction (the state change and its outbox rows commit together or not at all);
``delivery_attempt`` claims the row with a conditional UPDATE (one worker wins, the
others skip), sends outside any transaction, then records the outcome only if it still
holds the claim. A worker killed between sending and recording leaves the row claimed;
when the claim runs out the sweep sends it again, with the same event id, so a receiver
that dedupes by that id sees it once (docs/notifications.md).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urljoin

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from apps.audit.services import audit_record, audited_atomic
from apps.core.backoff import backoff_delay
from apps.core.errors import DomainError
from apps.core.failpoints import failpoint
from apps.notifications import channels
from apps.notifications import queue as notification_queue
from apps.notifications.events import ALL_EVENT_KINDS, Channel, DeliveryState, EventKind
from apps.notifications.models import Delivery, Notification, TeamChannel, UserPreference
from apps.notifications.selectors import default_preference

log = logging.getLogger(__name__)


def absolute_url(path: str) -> str:
    """A deep link: ``path`` on the public base URL people reach Slipway at."""
    return urljoin(settings.SLIPWAY_PUBLIC_URL.rstrip("/") + "/", path.lstrip("/"))


@dataclass(frozen=True)
class Draft:
    """One event to write: what it says, where it links, who it is for."""

    kind: str
    title: str
    path: str
    text: str = ""
    users: tuple = ()
    team: str = ""
    context: dict = field(default_factory=dict)


def notification_emit(
    *,
    kind: str,
    title: str,
    path: str,
    text: str = "",
    users: Iterable = (),
    team: str = "",
    context: dict | None = None,
) -> Notification | None:
    """Write one event and a delivery per destination to the outbox, in the caller's
    transaction, and send each after commit. ``users`` are the people the event is for
    (each one's preferences choose events and channels); ``team`` adds the team's
    channels. Returns None when nobody wants it (nothing is written)."""
    draft = Draft(kind, title, path, text, tuple(users), team, context or {})
    written = notification_emit_many(drafts=[draft])
    return written[0] if written else None


def notification_emit_many(*, drafts: Sequence[Draft]) -> list[Notification]:
    """``notification_emit`` for many events in a constant number of queries (a poll in
    which the whole fleet breaches writes them all at once). Events nobody wants are
    left out of the returned list."""
    for draft in drafts:
        if draft.kind not in ALL_EVENT_KINDS:
            raise ValueError(f"unknown notification kind {draft.kind!r}")
    if not drafts:
        return []
    people = {u.pk: u for d in drafts for u in d.users if u is not None and u.is_active}
    saved = (
        {p.user_id: p for p in UserPreference.objects.filter(user_id__in=list(people))}
        if people
        else {}
    )
    teams = {d.team for d in drafts if d.team}
    team_channels: dict[str, list[TeamChannel]] = {}
    if teams:
        for channel in TeamChannel.objects.filter(team__in=teams, active=True):
            team_channels.setdefault(channel.team, []).append(channel)
    now = timezone.now()
    planned: list[tuple[Notification, dict[tuple[str, str], dict]]] = []
    for draft in drafts:
        destinations = _destinations(draft, people, saved, team_channels)
        if destinations:
            notification = Notification(
                kind=draft.kind,
                title=draft.title[:300],
                text=draft.text,
                url=absolute_url(draft.path),
                team=draft.team,
                context=draft.context,
                created_at=now,
            )
            planned.append((notification, destinations))
    if not planned:
        return []
    notifications = Notification.objects.bulk_create([n for n, _ in planned])
    deliveries = Delivery.objects.bulk_create(
        Delivery(
            notification=notification,
            channel=channel,
            destination=destination,
            next_attempt_at=now,
            created_at=now,
            **owner,
        )
        for notification, destinations in planned
        for (channel, destination), owner in destinations.items()
    )
    for delivery in deliveries:
        notification_queue.enqueue_deliver_on_commit(delivery.pk)
    return notifications


def _destinations(draft: Draft, people, saved, team_channels) -> dict[tuple[str, str], dict]:
    """(channel, destination) -> the person or team it is sent for; one destination once."""
    destinations: dict[tuple[str, str], dict] = {}
    for user in draft.users:
        if user is None or user.pk not in people:
            continue
        preference = saved.get(user.pk) or default_preference(user)
        if draft.kind not in preference.events:
            continue
        wanted = [
            (Channel.EMAIL, user.email if preference.email else ""),
            (Channel.SLACK, preference.slack_url),
            (Channel.WEBHOOK, preference.webhook_url),
        ]
        for channel, destination in wanted:
            if destination:
                destinations.setdefault((channel, destination), {"user": user})
    for channel in team_channels.get(draft.team, []):
        if draft.kind in channel.events:
            destinations.setdefault((channel.channel, channel.destination), {"team": draft.team})
    return destinations


def _message(notification: Notification) -> channels.Message:
    return channels.Message(
        event_id=str(notification.event_id),
        kind=notification.kind,
        kind_label=EventKind(notification.kind).label,
        title=notification.title,
        text=notification.text,
        url=notification.url,
        created_at=notification.created_at.isoformat(),
        context=notification.context,
    )


def delivery_attempt(*, delivery_id: int, now: datetime | None = None) -> str:
    """One attempt at one delivery. Returns what happened: ``delivered``, ``retry``,
    ``failed``, or ``skipped`` (not due, or another worker holds it).

    No transaction is open while sending: the claim is its own committed UPDATE, so a
    slow receiver holds no row lock and a dead worker's claim simply runs out.
    """
    now = now or timezone.now()
    lease = timedelta(seconds=settings.NOTIFICATIONS_LEASE_SECONDS)
    claimed = (
        Delivery.objects.filter(pk=delivery_id)
        .filter(
            Q(state=DeliveryState.PENDING, next_attempt_at__lte=now)
            | Q(state=DeliveryState.SENDING, claimed_until__lt=now)
        )
        .update(
            state=DeliveryState.SENDING,
            attempts=F("attempts") + 1,
            claimed_until=now + lease,
            last_attempt_at=now,
        )
    )
    if not claimed:
        return "skipped"
    delivery = Delivery.objects.select_related("notification").get(pk=delivery_id)
    mine = Delivery.objects.filter(
        pk=delivery.pk, state=DeliveryState.SENDING, attempts=delivery.attempts
    )
    failpoint("notifications.before_send")
    try:
        channels.send(
            channel=delivery.channel,
            destination=delivery.destination,
            message=_message(delivery.notification),
        )
    except channels.DeliveryError as exc:
        error = f"attempt {delivery.attempts}: {exc}"[:2000]
        if exc.permanent or delivery.attempts >= settings.NOTIFICATIONS_MAX_ATTEMPTS:
            mine.update(state=DeliveryState.FAILED, claimed_until=None, last_error=error)
            log.warning("notification delivery #%s failed for good: %s", delivery.pk, error)
            return "failed"
        delay = backoff_delay(
            delivery.attempts,
            base=settings.NOTIFICATIONS_BACKOFF_BASE_SECONDS,
            cap=settings.NOTIFICATIONS_BACKOFF_CAP_SECONDS,
            jitter=0.2,
        )
        mine.update(
            state=DeliveryState.PENDING,
            claimed_until=None,
            last_error=error,
            next_attempt_at=now + timedelta(seconds=delay),  # from the attempt's start
        )
        return "retry"
    failpoint("notifications.after_send")
    mine.update(
        state=DeliveryState.DELIVERED,
        claimed_until=None,
        delivered_at=timezone.now(),
        last_error="",
    )
    return "delivered"


@audited_atomic
def delivery_retry(*, actor, delivery_ids: Iterable[int]) -> int:
    """An admin sends failed deliveries again (the receiver is fixed): they start a
    fresh round of attempts now. Returns how many were re-queued."""
    ids = list(
        Delivery.objects.select_for_update()
        .filter(pk__in=list(delivery_ids), state=DeliveryState.FAILED)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    Delivery.objects.filter(pk__in=ids).update(
        state=DeliveryState.PENDING, attempts=0, next_attempt_at=timezone.now()
    )
    for delivery_id in ids:
        notification_queue.enqueue_deliver_on_commit(delivery_id)
        audit_record(
            actor=actor,
            action="notification.retry",
            target_type="notification_delivery",
            target_id=delivery_id,
        )
    return len(ids)


@audited_atomic
def preference_update(
    *, actor, events: Iterable[str], email: bool, slack_url: str = "", webhook_url: str = ""
) -> UserPreference:
    """Save what ``actor`` wants to hear about, and where."""
    events = sorted(set(events))
    unknown = [e for e in events if e not in ALL_EVENT_KINDS]
    if unknown:
        raise DomainError(
            f"Unknown event kinds: {', '.join(unknown)}.", field_errors={"events": unknown}
        )
    for name, value in (("slack_url", slack_url), ("webhook_url", webhook_url)):
        if value and not value.startswith(("https://", "http://")):
            raise DomainError(
                f"The {name.replace('_', ' ')} must start with https:// (or http://).",
                field_errors={name: ["an http(s) URL"]},
            )
    if email and not actor.email:
        raise DomainError(
            "Your account has no e-mail address; ask an admin to add one or turn e-mail off.",
            field_errors={"email": ["no address on the account"]},
        )
    preference, _ = UserPreference.objects.select_for_update().get_or_create(user=actor)
    before = {
        "events": preference.events,
        "email": preference.email,
        "slack": bool(preference.slack_url),
        "webhook": bool(preference.webhook_url),
    }
    preference.events = events
    preference.email = email
    preference.slack_url = slack_url
    preference.webhook_url = webhook_url
    preference.save()
    audit_record(
        actor=actor,
        action="notification.preferences",
        target_type="user",
        target_id=actor.pk,
        before=before,
        # URLs of webhooks can carry tokens (Slack's do): only whether one is set.
        after={
            "events": events,
            "email": email,
            "slack": bool(slack_url),
            "webhook": bool(webhook_url),
        },
    )
    return preference
