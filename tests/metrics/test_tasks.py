"""The Celery tasks: registered under their explicit names, and a poll cycle never
overlaps itself."""

from __future__ import annotations

import pytest
from celery import current_app

from apps.core.locks import single_flight
from apps.metrics import tasks
from apps.metrics.models import MetricSample

pytestmark = pytest.mark.django_db


def test_tasks_are_registered_under_their_names():
    registered = current_app.tasks
    for name in ("metrics.poll", "metrics.rollup", "metrics.retention"):
        task = registered[name]
        assert task.acks_late and task.time_limit and task.soft_time_limit


def test_the_poll_task_runs_a_cycle(make_live, settings):
    settings.METRICS_BACKEND = "demo"
    make_live("churn-model", "prod")
    outcome = tasks.poll_task.apply().get()
    assert outcome["targets"] == 1 and outcome["samples"] == 9
    assert outcome["failed_sources"] == []


def test_a_poll_never_overlaps_a_running_one(make_live, settings):
    settings.METRICS_BACKEND = "demo"
    make_live("churn-model", "prod")
    with single_flight("metrics.poll") as mine:
        assert mine
        assert tasks.poll_task.apply().get() is None  # the other run holds the lock
    assert MetricSample.objects.count() == 0


def test_rollup_and_retention_tasks_run(db):
    assert tasks.rollup_task.apply().get() == {"5m": 0, "1h": 0, "rows": 0}
    assert tasks.retention_task.apply().get() == {"samples": 0, "rollups_5m": 0, "rollups_1h": 0}
