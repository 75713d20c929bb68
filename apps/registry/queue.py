"""The registry's background tasks, by the names they are registered under in ``tasks.py``.

Services enqueue through the functions here and never import ``tasks`` (which imports
services). The names are the queue's contract with messages already in the broker: never
rename one (``apps.core.queue`` explains the check that catches a drift).
"""

from __future__ import annotations

from apps.core.queue import declare, enqueue_now, enqueue_on_commit

# Sent by Celery beat (controlplane settings), declared here so the name is checked too.
SYNC = declare("registry.sync")
RETRY_ALIAS_UPDATES = declare("registry.retry_alias_updates")
SET_ALIAS = declare("registry.set_alias")


def enqueue_set_alias_on_commit(alias_update_id: int) -> None:
    """Send one attempt at an alias update once the transaction that wrote it commits.

    Robust (``apps.core.queue.enqueue_on_commit``): the caller's transaction has already
    committed (a release is live), so a broker that is down at that moment must not turn
    it into an error. Nothing is lost: the update carries ``next_attempt_at``, and the
    sweeper sends it when it falls due.
    """
    enqueue_on_commit(SET_ALIAS, alias_update_id=alias_update_id)


def enqueue_set_alias_now(alias_update_id: int) -> None:
    """Send one attempt at an alias update at once (the sweeper, outside any transaction)."""
    enqueue_now(SET_ALIAS, alias_update_id=alias_update_id)
