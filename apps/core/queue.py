"""The one way Slipway enqueues background work: by declared name, after commit.

Each app lists its task names in its own ``queue.py`` (``declare("releases.deploy_pending")``)
and offers small ``enqueue_*`` functions that services call. Services never import
``tasks`` modules (which import services: a circle), and a message is sent only once the
transaction that made the work visible has committed, so a worker never looks for a row
that is not there yet. ``tests/core/test_queue.py`` fails when a declared name is not a
registered Celery task (a rename that would strand queued messages).
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

_DECLARED: set[str] = set()


def declare(name: str) -> str:
    """Record ``name`` as a task some app enqueues; returns it for use as a constant."""
    _DECLARED.add(name)
    return name


def declared_task_names() -> frozenset[str]:
    return frozenset(_DECLARED)


def enqueue_now(name: str, **kwargs: Any) -> None:
    """Send the task at once: only for callers outside any transaction (a task
    re-sending work, a management command)."""
    from celery import current_app

    if name not in _DECLARED:
        raise LookupError(f"task {name!r} is not declared in any app's queue module")
    current_app.send_task(name, kwargs=kwargs)


def enqueue_on_commit(name: str, **kwargs: Any) -> None:
    """Send the task when the current transaction commits (at once when none is open).

    The send is registered ``robust``: a broker that is down at commit time must not turn
    a committed state change into an error for the caller, nor stop later on-commit
    callbacks. The work is not lost: every enqueued job has a periodic sweeper (the status
    poll re-sends deploys, the alias sweeper re-sends alias updates) that finds it in the
    database. The callback is a named function, not a ``partial``: Django 5.2 logs a
    failing robust callback by ``__qualname__``, which a partial lacks (ticket #36487).
    """
    if name not in _DECLARED:
        raise LookupError(f"task {name!r} is not declared in any app's queue module")

    def send_declared_task() -> None:
        enqueue_now(name, **kwargs)

    # Django names the callback in its log line when the send fails: make it say which task.
    send_declared_task.__qualname__ = f"send of task {name}"
    transaction.on_commit(send_declared_task, robust=True)
