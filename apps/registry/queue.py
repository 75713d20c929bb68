"""The registry's background tasks, by the names they are registered under in ``tasks.py``.

Services enqueue through the functions here and never import ``tasks`` (which imports
services). The names are the queue's contract with messages already in the broker: never
rename one (``apps.core.queue`` explains the check that catches a drift).
"""

from __future__ import annotations

from django.db import transaction

from apps.core.queue import declare, enqueue_now

# Sent by Celery beat (controlplane settings), declared here so the name is checked too.
SYNC = declare("registry.sync")
RETRY_ALIAS_UPDATES = declare("registry.retry_alias_updates")
SET_ALIAS = declare("registry.set_alias")


def enqueue_set_alias_on_commit(alias_update_id: int) -> None:
    """Send one attempt at an alias update once the transaction that wrote it commits.

    Robust, unlike ``apps.core.queue.enqueue_on_commit``: the caller's transaction has
    already committed (a release is live), so a broker that is down at that moment must
    not turn it into an error or stop the other on-commit callbacks. Nothing is lost: the
    update carries ``next_attempt_at``, and the sweeper sends it when it falls due.
    """

    # A named function, not functools.partial: Django 5.2 logs a robust callback's
    # failure with ``func.__qualname__``, which a partial lacks, so the logging itself
    # raised AttributeError into the caller (Django ticket #36487; the partial used here
    # before made ``robust=True`` do nothing).
    def send_set_alias() -> None:
        enqueue_now(SET_ALIAS, alias_update_id=alias_update_id)

    transaction.on_commit(send_set_alias, robust=True)


def enqueue_set_alias_now(alias_update_id: int) -> None:
    """Send one attempt at an alias update at once (the sweeper, outside any transaction)."""
    enqueue_now(SET_ALIAS, alias_update_id=alias_update_id)
