"""The registry enqueues one way: by declared task name, after commit, robust to a broker
that is down, and never by importing its tasks module from services."""

from __future__ import annotations

import ast
import logging
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from celery import current_app
from celery.signals import before_task_publish
from django.conf import settings as django_settings
from django.utils import timezone

from apps.audit.services import audited_atomic
from apps.core.queue import declared_task_names
from apps.registry import queue, tasks
from apps.registry.models import AliasUpdate, AliasUpdateState, ModelVersion
from apps.registry.selectors import alias_updates_due
from apps.registry.services import (
    ALIAS_RETRY_BASE_SECONDS,
    registry_alias_assign,
    registry_sync,
)
from tests.fixtures.mlflow import free_port

SERVICES_DIR = Path(queue.__file__).parent / "services"


@pytest.fixture
def synced(mlflow_store):
    registry_sync(client=mlflow_store.registry_client())
    return mlflow_store


@pytest.fixture
def published():
    """(task name, kwargs) of every message Celery publishes while the test runs."""
    sent: list[tuple[str, dict]] = []

    def record(sender=None, body=None, **_):
        sent.append((sender, body[1]))  # task protocol 2: (args, kwargs, embed)

    before_task_publish.connect(record, weak=False)
    yield sent
    before_task_publish.disconnect(record)


def _drop_pools(app) -> None:
    # Celery caches its broker connection and producer pools; dropping them (as Celery
    # does after a fork) makes the next send connect to the broker configured now.
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture
def broker_down():
    """The broker is a Redis port where nothing listens (free a moment ago) until the
    test ends."""
    app = current_app._get_current_object()
    saved = app.conf.broker_url, app.conf.broker_transport
    app.conf.broker_url = f"redis://127.0.0.1:{free_port()}/0"
    app.conf.broker_transport = None  # else a configured transport wins over the URL
    _drop_pools(app)
    yield
    app.conf.broker_url, app.conf.broker_transport = saved
    _drop_pools(app)


def assign(n: int = 2) -> AliasUpdate:
    return registry_alias_assign(
        model_version=ModelVersion.objects.get(name="churn-model", version=n),
        alias="prod",
        release_uid=str(uuid.uuid4()),
        actor_label="deployer",
    )


def test_declared_names_are_the_registered_task_names():
    registered = {name for name in current_app.tasks if name.startswith("registry.")}
    declared = {name for name in declared_task_names() if name.startswith("registry.")}
    assert tasks.registry_set_alias.name == queue.SET_ALIAS
    assert registered == declared == {queue.SYNC, queue.SET_ALIAS, queue.RETRY_ALIAS_UPDATES}
    beat = {entry["task"] for entry in django_settings.CELERY_BEAT_SCHEDULE.values()}
    assert {queue.SYNC, queue.RETRY_ALIAS_UPDATES} <= beat


def test_services_never_import_tasks():
    for path in SERVICES_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            assert not any(name.startswith("apps.registry.tasks") for name in names), path.name


@pytest.mark.django_db(transaction=True)
def test_assign_sends_one_message_after_commit_that_the_task_applies(synced, published, settings):
    with audited_atomic():
        update = assign(2)
        assert published == []  # nothing leaves before the row is visible to a worker

    assert published == [(queue.SET_ALIAS, {"alias_update_id": update.pk})]
    settings.MLFLOW_TRACKING_URI = synced.uri
    tasks.registry_set_alias.apply(kwargs=published[0][1]).get()
    update.refresh_from_db()
    assert update.state == AliasUpdateState.DONE


@pytest.mark.django_db(transaction=True)
def test_a_broker_down_at_commit_fails_nothing_and_leaves_the_update_to_the_sweeper(
    synced, broker_down, published, caplog
):
    with caplog.at_level(logging.ERROR):
        update = assign(2)  # commits; the send after commit fails, and only logs

    assert "send of task registry.set_alias" in caplog.text and "Connection refused" in caplog.text

    update.refresh_from_db()
    assert update.state == AliasUpdateState.PENDING
    assert published == [(queue.SET_ALIAS, {"alias_update_id": update.pk})]  # it was tried
    later = timezone.now() + timedelta(seconds=ALIAS_RETRY_BASE_SECONDS)
    assert alias_updates_due(now=later) == [update.pk]


@pytest.mark.django_db
def test_sweeper_sends_each_due_update_at_once(synced, published):
    update = assign(2)
    AliasUpdate.objects.filter(pk=update.pk).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )

    assert tasks.registry_retry_alias_updates.apply().get() == 1
    assert published == [(queue.SET_ALIAS, {"alias_update_id": update.pk})]
