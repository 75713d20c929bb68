"""The background work notifications asks for, by task name (see ``apps.core.queue``).

The names are part of the message format: they must stay what ``tasks.py`` registers.
"""

from __future__ import annotations

from apps.core.queue import declare, enqueue_now, enqueue_on_commit

DELIVER = declare("notifications.deliver")
# Sent by Celery beat (settings.CELERY_BEAT_SCHEDULE), declared so a rename is caught too.
SWEEP = declare("notifications.sweep")


def enqueue_deliver_on_commit(delivery_id: int) -> None:
    """First attempt once the state change and its outbox rows have committed. A lost
    message (broker down at commit) is found by the sweep."""
    enqueue_on_commit(DELIVER, delivery_id=delivery_id)


def enqueue_deliver_now(delivery_id: int) -> None:
    """An attempt for a delivery that is due (the sweep, outside any transaction)."""
    enqueue_now(DELIVER, delivery_id=delivery_id)
