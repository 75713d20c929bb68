"""Celery tasks for metrics: thin, named explicitly (names are part of the message format:
never rename one that may still be queued), no arguments or JSON ones, time limits set.

Beat fires them on schedule whether or not the previous run finished; each takes a
single-flight lock and returns at once when another run holds it, so a slow Prometheus
never makes cycles pile up on each other.
"""

from __future__ import annotations

import logging

from celery import shared_task

from apps.core.locks import single_flight

log = logging.getLogger(__name__)


@shared_task(
    name="metrics.poll",
    acks_late=True,
    ignore_result=True,
    soft_time_limit=100,
    time_limit=120,
)
def poll_task() -> dict | None:
    """Read every metric source for every live release, store the readings, judge the
    SLOs and let the auto-rollback guard act; then judge progressive rollouts' steps.
    Skips when the previous cycle still runs."""
    from apps.metrics.services import metrics_poll, rollouts_step

    with single_flight("metrics.poll") as mine:
        if not mine:
            log.info("metrics.poll: the previous cycle is still running; skipped")
            return None
        result = metrics_poll()
        # Progressive rollouts are judged on the same beat, so a verdict acts (the next
        # step, or the abort commit) within one poll. Its own failure (the git remote
        # down: the decision stays pending and is committed next poll) must not lose
        # the poll's result.
        try:
            steps = rollouts_step()
        except Exception:
            log.exception("metrics.poll: the step controller failed; it retries next poll")
            steps = []
    return {
        "rollout_steps": [(d.release_id, d.step, d.action) for d in steps],
        "targets": result.targets,
        "samples": result.samples_written,
        "events": len(result.events),
        "failed_sources": [run.source for run in result.sources if run.error and not run.ok],
    }


@shared_task(
    name="metrics.rollup",
    acks_late=True,
    ignore_result=True,
    soft_time_limit=270,
    time_limit=300,
)
def rollup_task() -> dict | None:
    """Bring the 5-minute and hourly roll-ups up to date (idempotent: recomputes buckets)."""
    from apps.metrics.services import metrics_rollup

    with single_flight("metrics.rollup") as mine:
        if not mine:
            return None
        return metrics_rollup()


@shared_task(
    name="metrics.retention",
    acks_late=True,
    ignore_result=True,
    soft_time_limit=540,
    time_limit=570,
)
def retention_task() -> dict | None:
    """Delete raw samples and roll-ups past their retention, in batches."""
    from apps.metrics.services import metrics_retention

    with single_flight("metrics.retention") as mine:
        if not mine:
            return None
        return metrics_retention()
