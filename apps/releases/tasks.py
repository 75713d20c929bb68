"""Celery tasks for releases: thin, named explicitly (names are part of the message
format: never rename one that may still be queued), ids in, JSON only."""

from __future__ import annotations

import logging

from celery import shared_task

from apps.core.backoff import backoff_delay
from apps.core.locks import single_flight
from apps.gitops.errors import GitOpsError
from apps.releases import queue as release_queue

log = logging.getLogger(__name__)

RETRY_BACKOFF_CAP_SECONDS = 60


@shared_task(
    name="releases.deploy_pending", bind=True, acks_late=True, max_retries=None, ignore_result=True
)
def deploy_pending_task(self, resend: bool = False):
    """Commit every approved release to the GitOps repository, in approval order.

    The remote being down is not a failure: the task retries with capped exponential
    backoff until it is back, and the status poll re-sends it if a message is lost.

    Two guards keep an outage from multiplying work (found by
    tests/hardening/test_outages.py: a 20 s outage, 1 s polls and 3 approvals made 77
    retried attempts, a number that grew with the length of the outage; now 31):
    - one drain at a time across workers (``single_flight``): a second message finds the
      first draining, and that drain commits everything, so it returns at once instead
      of holding a worker slot while it waits for the repository lock;
    - a ``resend`` from the status poll does not start its own retry chain: the poll
      sends again next period anyway. Before, every poll during an outage added one
      more chain retrying forever, so the attempts per second grew with the length of
      the outage instead of staying one per poll plus one chain per approval.
    """
    from apps.releases.deploy import deploy_pending

    with single_flight("releases.deploy_pending") as mine:
        if not mine:
            log.info("another worker is draining the deploy queue; it commits this too")
            return
        try:
            deploy_pending()
        except GitOpsError as exc:
            if not getattr(exc, "retryable", False):
                raise
            if resend:
                log.warning("deploy postponed to the next status poll: %s", exc)
                return
            failure = exc
        else:
            return
    # Retry outside the single-flight lock, so the next attempt is not refused by it.
    countdown = backoff_delay(self.request.retries + 1, base=1, cap=RETRY_BACKOFF_CAP_SECONDS)
    log.warning("deploy postponed %ss: %s", countdown, failure)
    raise self.retry(exc=failure, countdown=countdown)


@shared_task(
    name="releases.rollout_commits",
    acks_late=True,
    ignore_result=True,
    soft_time_limit=100,
    time_limit=120,
)
def rollout_commits_task():
    """Make the rollout commits decided (a person's abort or promote-now). The remote
    being down is no failure here: the decision stays pending and the step controller's
    next pass (on the metrics poll) makes it."""
    from apps.releases.deploy import rollout_commit_pending

    with single_flight("releases.rollout_commits") as mine:
        if not mine:
            return
        try:
            rollout_commit_pending()
        except GitOpsError as exc:
            if not getattr(exc, "retryable", False):
                raise
            log.warning("rollout commit postponed to the next poll: %s", exc)


@shared_task(name="releases.follow_rollouts", acks_late=True, ignore_result=True)
def follow_rollouts_task():
    """Move deploying releases to live or failed from Argo CD's answers; also re-send the
    deploy task when approved releases wait (a lost message must not strand them), which
    is also what commits a release held by a freeze once the freeze ends."""
    from apps.releases.cluster import cluster_reader, repository_writer
    from apps.releases.freeze import any_ready_to_commit
    from apps.releases.rollout import follow_rollouts
    from apps.releases.selectors import releases_awaiting_commit

    with single_flight("releases.follow_rollouts") as mine:
        if not mine:
            return
        writer = repository_writer()
        try:
            follow_rollouts(reader=cluster_reader(), writer=writer)
        finally:
            if writer is not None:
                writer.close()
    # Not for releases a freeze holds (they would be looked at and left again every
    # period); when the freeze ends they count again and the drain commits them.
    if any_ready_to_commit(releases_awaiting_commit()):
        release_queue.resend_deploy()
