"""The background work releases asks for, by task name (see ``apps.core.queue``).

The names are part of the message format: they must stay what ``tasks.py`` registers,
or messages already queued under the old name are stranded. ``tests/core/test_queue.py``
fails when one of them is not a registered task. Services call the functions here and
never import ``tasks`` (which imports services).
"""

from __future__ import annotations

from apps.core.queue import declare, enqueue_now, enqueue_on_commit

DEPLOY_PENDING = declare("releases.deploy_pending")
# Sent by Celery beat (settings.CELERY_BEAT_SCHEDULE), declared so a rename is caught too.
FOLLOW_ROLLOUTS = declare("releases.follow_rollouts")
ROLLOUT_COMMITS = declare("releases.rollout_commits")


def enqueue_deploy_on_commit() -> None:
    """Drain the deploy queue once the transaction that approved a release commits: the
    worker must find the release approved, never a row that is not visible yet."""
    enqueue_on_commit(DEPLOY_PENDING)


def resend_deploy() -> None:
    """Send the deploy drain again now, marked as a resend (the status poll's safety net
    for a lost message; a resend does not start its own retry chain)."""
    enqueue_now(DEPLOY_PENDING, resend=True)


def enqueue_rollout_commits_on_commit() -> None:
    """Make a rollout commit a person decided (abort, promote now) once the decision
    commits, instead of waiting for the next metrics poll (which would make it too)."""
    enqueue_on_commit(ROLLOUT_COMMITS)
