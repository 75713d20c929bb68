"""Notification tasks: thin wrappers that take ids and call a service.

Names are part of the queue's contract: never rename one that may still be queued.
Retries live in the database (``Delivery.next_attempt_at``) and the sweep sends them, as
the registry's alias updates do: a Celery countdown longer than Redis' visibility timeout
is delivered twice, and a queued retry is lost with the broker.
"""

from __future__ import annotations

from celery import shared_task

from apps.notifications import selectors, services
from apps.notifications.queue import enqueue_deliver_now


@shared_task(
    name="notifications.deliver",
    acks_late=True,
    ignore_result=True,
    soft_time_limit=90,
    time_limit=120,
)
def deliver_task(delivery_id: int) -> str:
    """One attempt at one delivery (a duplicate message finds it claimed or done)."""
    return services.delivery_attempt(delivery_id=delivery_id)


@shared_task(
    name="notifications.sweep",
    acks_late=True,
    ignore_result=True,
    soft_time_limit=50,
    time_limit=60,
)
def sweep_task() -> int:
    """Beat: queue an attempt for every delivery that is due: retries, first attempts
    whose message was lost, and sends whose worker died mid-way."""
    due = selectors.deliveries_due()
    for delivery_id in due:
        enqueue_deliver_now(delivery_id)
    return len(due)
