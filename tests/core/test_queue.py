"""The one way to enqueue (apps.core.queue), held to the Celery app that runs the tasks.

Every app's ``queue.py`` declares the task names it sends; a declared name that no task
is registered under would strand its messages (a renamed task), so each one must be a
registered task once Celery has discovered every app's ``tasks`` module. The apps are
found generically, so a new app's ``queue.py`` is covered without touching this file.
"""

from __future__ import annotations

import importlib
import importlib.util

import pytest
from django.apps import apps as django_apps
from django.db import transaction

from apps.core import queue as core_queue
from controlplane.celery import app as celery_app
from tests.fixtures.broker import sent


def _app_modules(suffix: str) -> list[str]:
    """``<app>.<suffix>`` for every installed app that has one, by the app's module name
    (an INSTALLED_APPS entry may be an AppConfig path)."""
    names = []
    for config in django_apps.get_app_configs():
        name = f"{config.name}.{suffix}"
        if importlib.util.find_spec(name) is not None:
            names.append(name)
    return names


def _import_all(suffix: str) -> list[str]:
    names = _app_modules(suffix)
    for name in names:
        importlib.import_module(name)
    return names


def _registered_task_names() -> set[str]:
    celery_app.loader.import_default_modules()  # runs the lazy autodiscovery of tasks
    _import_all("tasks")  # and every tasks module, should autodiscovery miss one
    return {name for name in celery_app.tasks if not name.startswith("celery.")}


def test_every_declared_task_name_is_a_registered_task():
    queue_modules = _import_all("queue")
    assert "apps.releases.queue" in queue_modules
    declared = core_queue.declared_task_names()
    # The releases names at least: an empty set would make the check below pass vacuously.
    assert {"releases.deploy_pending", "releases.follow_rollouts"} <= declared
    registered = _registered_task_names()
    missing = sorted(declared - registered)
    assert not missing, (
        f"declared in a queue module but no task is registered under the name: {missing}; "
        f"registered: {sorted(registered)}"
    )


def test_an_undeclared_name_is_refused():
    with pytest.raises(LookupError, match=r"releases\.no_such_task"):
        core_queue.enqueue_on_commit("releases.no_such_task")
    with pytest.raises(LookupError, match=r"releases\.no_such_task"):
        core_queue.enqueue_now("releases.no_such_task")


@pytest.mark.django_db(transaction=True)
def test_an_enqueue_inside_a_transaction_is_sent_only_at_commit(celery_queue):
    from apps.releases import queue as release_queue

    with transaction.atomic():
        release_queue.enqueue_deploy_on_commit()
        with transaction.atomic():  # a savepoint releasing is not the commit
            release_queue.enqueue_deploy_on_commit()
        assert sent(celery_queue) == []
    assert sent(celery_queue) == [("releases.deploy_pending", {})] * 2


@pytest.mark.django_db(transaction=True)
def test_an_enqueue_in_a_rolled_back_transaction_is_never_sent(celery_queue):
    from apps.releases import queue as release_queue

    with pytest.raises(RuntimeError), transaction.atomic():
        release_queue.enqueue_deploy_on_commit()
        raise RuntimeError("the approval failed after asking for the deploy")
    with transaction.atomic():
        pass  # a later commit does not send what the rolled-back one asked for
    assert sent(celery_queue) == []


def test_a_resend_goes_out_at_once_and_says_so(celery_queue):
    from apps.releases import queue as release_queue

    release_queue.resend_deploy()
    assert sent(celery_queue) == [("releases.deploy_pending", {"resend": True})]
