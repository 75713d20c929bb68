"""Reads: what is due for sending, what a person has chosen."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from apps.notifications.events import ALL_EVENT_KINDS, DeliveryState
from apps.notifications.models import Delivery, UserPreference


def deliveries_due(*, now: datetime | None = None, limit: int = 500) -> list[int]:
    """Deliveries a worker should try now: retries whose time has come, first attempts
    whose on-commit message seems lost (older than the grace period), and sends whose
    worker died (its claim ran out)."""
    now = now or timezone.now()
    grace = timedelta(seconds=settings.NOTIFICATIONS_SWEEP_GRACE_SECONDS)
    due = (
        Q(state=DeliveryState.PENDING, attempts__gt=0, next_attempt_at__lte=now)
        | Q(state=DeliveryState.PENDING, attempts=0, created_at__lte=now - grace)
        | Q(state=DeliveryState.SENDING, claimed_until__lt=now)
    )
    return list(
        Delivery.objects.filter(due)
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )


def default_preference(user) -> UserPreference:
    """What a person without saved preferences gets: every event, by e-mail."""
    return UserPreference(user=user, events=list(ALL_EVENT_KINDS), email=True)


def preference_for(user) -> UserPreference:
    """The person's saved preferences, or the defaults."""
    return UserPreference.objects.filter(user=user).first() or default_preference(user)
