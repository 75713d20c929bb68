"""The notification outbox and who wants what.

``Notification`` is one event (its ``event_id`` is the dedupe key every channel carries);
``Delivery`` is one destination of it (an e-mail address, a Slack or webhook URL) and its
progress. Both are written in the transaction that makes the state change they report,
so a notification exists exactly when the change committed; the deliveries are sent
after commit (``apps/notifications/queue.py``) and retried from the database.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from apps.notifications.events import ALL_EVENT_KINDS, Channel, DeliveryState, EventKind


def all_event_kinds() -> list[str]:
    return list(ALL_EVENT_KINDS)


class Notification(models.Model):
    """One event worth telling people about, with its deep link."""

    event_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    kind = models.CharField(max_length=32, choices=EventKind.choices)
    title = models.CharField(max_length=300)
    text = models.TextField(blank=True)
    url = models.URLField(max_length=500, help_text="absolute link to the page to act on")
    team = models.CharField(max_length=100, blank=True, help_text="the owning team, if any")
    context = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.title}"


class Delivery(models.Model):
    """One destination of a notification and how sending it went."""

    notification = models.ForeignKey(
        Notification, on_delete=models.CASCADE, related_name="deliveries"
    )
    channel = models.CharField(max_length=16, choices=Channel.choices)
    destination = models.CharField(max_length=500, help_text="e-mail address or URL")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="notification_deliveries",
    )
    team = models.CharField(max_length=100, blank=True)
    state = models.CharField(
        max_length=16, choices=DeliveryState.choices, default=DeliveryState.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    claimed_until = models.DateTimeField(
        null=True, blank=True, help_text="a worker is sending it until then"
    )
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name_plural = "deliveries"
        constraints = [
            # One event reaches one destination once, however many reasons it has to.
            models.UniqueConstraint(
                fields=["notification", "channel", "destination"], name="delivery_unique_dest"
            ),
        ]
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="delivery_due")]

    def __str__(self) -> str:
        return f"{self.get_channel_display()} to {self.destination}: {self.state}"


class UserPreference(models.Model):
    """Which events a person wants and where. Without a row: every event they are a
    recipient of, by e-mail to their address."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_preference"
    )
    events = models.JSONField(default=all_event_kinds, blank=True)
    email = models.BooleanField(default=True, help_text="send to my e-mail address")
    slack_url = models.URLField(
        max_length=500, blank=True, help_text="a Slack-compatible incoming webhook URL"
    )
    webhook_url = models.URLField(
        max_length=500, blank=True, help_text="a URL that receives signed JSON"
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"notification preferences of {self.user}"


class TeamChannel(models.Model):
    """Where a team hears about its services' events. ``team`` matches
    the owning team's slug (``Team.slug``, accounts)."""

    team = models.CharField(max_length=100, db_index=True)
    channel = models.CharField(max_length=16, choices=Channel.choices)
    destination = models.CharField(max_length=500, help_text="e-mail address or URL")
    events = models.JSONField(default=all_event_kinds, blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["team", "channel", "destination"]
        constraints = [
            models.UniqueConstraint(
                fields=["team", "channel", "destination"], name="team_channel_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.team}: {self.get_channel_display()} {self.destination}"
