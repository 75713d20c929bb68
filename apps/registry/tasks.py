"""Registry tasks: thin wrappers that take ids and call a service.

Names are explicit and part of the queue's contract: never rename one that may still be
queued. Arguments are JSON (ids only). ``acks_late`` with idempotent services means a task
redelivered after a worker died does no harm.
"""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from apps.registry import selectors, services
from apps.registry.client import RegistryClient
from apps.registry.queue import enqueue_set_alias_now

# The whole sync must end before the soft limit; the client stops calling MLflow when
# its budget is spent, so a slow MLflow ends the sync cleanly instead of killing it.
SYNC_SOFT_TIME_LIMIT = 240
SYNC_TIME_LIMIT = 300


@shared_task(
    name="registry.sync",
    acks_late=True,
    ignore_result=True,
    soft_time_limit=SYNC_SOFT_TIME_LIMIT,
    time_limit=SYNC_TIME_LIMIT,
)
def registry_sync_task() -> dict:
    """Beat: mirror what changed in MLflow since the last sync."""
    client = RegistryClient(budget_seconds=SYNC_SOFT_TIME_LIMIT - 30)
    return services.registry_sync(client=client).as_dict()


@shared_task(
    name="registry.set_alias",
    acks_late=True,
    ignore_result=True,
    soft_time_limit=90,
    time_limit=120,
)
def registry_set_alias(alias_update_id: int) -> None:
    """One attempt at pointing an MLflow alias at a version; failures are rescheduled
    in the database (``next_attempt_at``) and picked up by ``registry.retry_alias_updates``."""
    services.registry_alias_apply(
        alias_update_id=alias_update_id,
        client=RegistryClient(budget_seconds=min(60, settings.MLFLOW_TIMEOUT_SECONDS * 3)),
    )


@shared_task(
    name="registry.retry_alias_updates",
    acks_late=True,
    ignore_result=True,
    soft_time_limit=50,
    time_limit=60,
)
def registry_retry_alias_updates() -> int:
    """Beat: queue an attempt for every pending alias update that is due.

    Retries live in the database rather than as Celery countdowns: a countdown longer
    than the broker's visibility timeout is delivered twice on Redis, and a queued retry
    is lost with the broker. Duplicates are harmless (the service is idempotent)."""
    due = selectors.alias_updates_due()
    for alias_update_id in due:
        enqueue_set_alias_now(alias_update_id)
    return len(due)
