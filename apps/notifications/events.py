"""The events Slipway tells people about, and the channels it tells them through.

Plain choices with no model behind them, so any app (releases, metrics, the progressive
delivery controller) can name an event kind without importing more than this module.
"""

from __future__ import annotations

from django.db import models


class EventKind(models.TextChoices):
    RELEASE_WAITING = "release_waiting", "A release waits for your approval"
    RELEASE_APPROVED = "release_approved", "Release approved"
    RELEASE_REJECTED = "release_rejected", "Release rejected"
    DEPLOY_FAILED = "deploy_failed", "Deploy failed"
    BREACH_STARTED = "breach_started", "SLO breach started"
    BREACH_RECOVERED = "breach_recovered", "SLO breach recovered"
    ROLLBACK_STARTED = "rollback_started", "Rollback started"
    ROLLBACK_LIVE = "rollback_live", "Rollback live"
    AUTO_ABORT = "auto_abort", "Progressive delivery aborted automatically"
    SHADOW_REPORT = "shadow_report", "A shadow evaluation report is ready for review"


ALL_EVENT_KINDS: tuple[str, ...] = tuple(EventKind.values)


class Channel(models.TextChoices):
    EMAIL = "email", "E-mail"
    SLACK = "slack", "Slack-compatible incoming webhook"
    WEBHOOK = "webhook", "Generic webhook (HMAC-SHA256 signed)"


class DeliveryState(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"
