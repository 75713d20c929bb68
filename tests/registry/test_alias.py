"""MLflow aliases follow what is live: set after commit, moved back on rollback, retried
while MLflow is down, never blocking the caller."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.audit.services import audited_atomic
from apps.core.errors import Conflict, DomainError
from apps.registry import services
from apps.registry.client import RegistryClient
from apps.registry.models import AliasUpdate, AliasUpdateState, ModelVersion, RegisteredModel
from apps.registry.selectors import alias_updates_due, alias_updates_for
from apps.registry.services import (
    registry_alias_apply,
    registry_alias_assign,
    registry_alias_retry,
    registry_sync,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def synced(mlflow_store):
    registry_sync(client=mlflow_store.registry_client())
    return mlflow_store


def version(n: int, name: str = "churn-model") -> ModelVersion:
    return ModelVersion.objects.get(name=name, version=n)


def assign(n: int, alias: str = "prod") -> AliasUpdate:
    return registry_alias_assign(
        model_version=version(n), alias=alias, release_uid=str(uuid.uuid4()), actor_label="deployer"
    )


def mlflow_alias(store, alias="prod", name="churn-model"):
    return int(store.mlflow().get_model_version_by_alias(name, alias).version)


def test_assign_records_and_schedules_after_commit(synced, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        update = assign(2)

    assert len(callbacks) == 1
    assert update.state == AliasUpdateState.PENDING and update.attempts == 0
    assert update.requested_by == "deployer"
    assert AuditEvent.objects.filter(
        action="registry.alias_requested", target_id=str(version(2).pk)
    ).exists()
    assert list(alias_updates_for(update.release_uid)) == [update]


def test_apply_sets_alias_and_release_tag_in_mlflow(synced):
    update = assign(2)
    client = synced.registry_client()

    update = registry_alias_apply(alias_update_id=update.pk, client=client)

    assert update.state == AliasUpdateState.DONE and update.attempts == 1
    assert mlflow_alias(synced) == 2
    tags = synced.mlflow().get_model_version("churn-model", "2").tags
    assert tags["slipway.release_id"] == str(update.release_uid)
    assert version(2).aliases == ["prod"]
    assert version(2).tags["slipway.release_id"] == str(update.release_uid)
    assert RegisteredModel.objects.get(name="churn-model").aliases == {"prod": 2}
    event = AuditEvent.objects.get(action="registry.alias_set")
    assert event.before == {"alias": "prod", "version": None}
    assert event.after["version"] == 2
    # The next sync agrees with what was written, without per-model calls.
    sync_client = synced.registry_client()
    assert registry_sync(client=sync_client).versions_updated == []
    assert dict(sync_client.calls_by_method) == {"search_registered_models": 1}


def test_rollback_moves_the_alias_back(synced):
    client = synced.registry_client()
    registry_alias_apply(alias_update_id=assign(3).pk, client=client)
    assert mlflow_alias(synced) == 3

    rollback = assign(2)
    registry_alias_apply(alias_update_id=rollback.pk, client=client)

    assert mlflow_alias(synced) == 2
    assert version(2).aliases == ["prod"] and version(3).aliases == []
    assert synced.mlflow().get_model_version("churn-model", "2").tags["slipway.release_id"] == str(
        rollback.release_uid
    )
    assert AuditEvent.objects.filter(action="registry.alias_set").first().before == {
        "alias": "prod",
        "version": 3,
    }


def test_mlflow_down_never_fails_the_caller_and_retries_later(synced, unreachable_mlflow_uri):
    down = RegistryClient(tracking_uri=unreachable_mlflow_uri)
    with audited_atomic():  # the caller's transaction (release goes live) commits
        update = assign(2)

    update = registry_alias_apply(alias_update_id=update.pk, client=down)
    assert update.state == AliasUpdateState.PENDING
    assert update.attempts == 1 and "refused the connection" in update.last_error
    first_wait = update.next_attempt_at - update.last_attempt_at
    assert timedelta(seconds=25) < first_wait < timedelta(seconds=35)
    assert update.pk not in alias_updates_due()

    update = registry_alias_apply(alias_update_id=update.pk, client=down)
    assert update.attempts == 2
    assert update.next_attempt_at - update.last_attempt_at > timedelta(seconds=55)
    assert update.pk in alias_updates_due(now=timezone.now() + timedelta(minutes=2))

    # MLflow is back: the next attempt succeeds.
    update = registry_alias_apply(alias_update_id=update.pk, client=synced.registry_client())
    assert update.state == AliasUpdateState.DONE and update.attempts == 3
    assert update.last_error == ""
    assert mlflow_alias(synced) == 2


def test_an_older_update_never_wins_over_a_newer_one(synced, unreachable_mlflow_uri):
    down = RegistryClient(tracking_uri=unreachable_mlflow_uri)
    old = assign(3)
    registry_alias_apply(alias_update_id=old.pk, client=down)  # pending, retrying
    new = assign(2)  # rollback while MLflow is down

    old.refresh_from_db()
    assert old.state == AliasUpdateState.SUPERSEDED

    # Even if the old one were still pending (a race), applying it changes nothing.
    AliasUpdate.objects.filter(pk=old.pk).update(state=AliasUpdateState.PENDING)
    client = synced.registry_client()
    assert registry_alias_apply(alias_update_id=old.pk, client=client).state == "superseded"
    assert client.calls == 0

    registry_alias_apply(alias_update_id=new.pk, client=client)
    assert mlflow_alias(synced) == 2


def test_redelivered_task_does_nothing(synced):
    update = assign(2)
    registry_alias_apply(alias_update_id=update.pk, client=synced.registry_client())
    again = synced.registry_client()

    assert registry_alias_apply(alias_update_id=update.pk, client=again).state == "done"
    assert again.calls == 0
    assert registry_alias_apply(alias_update_id=999_999, client=again) is None


def test_version_gone_from_mlflow_fails_without_retrying(synced):
    update = assign(1)
    synced.mlflow().delete_model_version("churn-model", "1")

    update = registry_alias_apply(alias_update_id=update.pk, client=synced.registry_client())

    assert update.state == AliasUpdateState.FAILED
    assert update.last_error.startswith("MLflow refused")
    assert update.next_attempt_at is None
    assert AuditEvent.objects.filter(action="registry.alias_failed").exists()


def test_gives_up_after_the_last_attempt(synced, unreachable_mlflow_uri):
    update = assign(2)
    AliasUpdate.objects.filter(pk=update.pk).update(attempts=services.ALIAS_MAX_ATTEMPTS - 1)

    update = registry_alias_apply(
        alias_update_id=update.pk, client=RegistryClient(tracking_uri=unreachable_mlflow_uri)
    )

    assert update.state == AliasUpdateState.FAILED
    assert update.attempts == services.ALIAS_MAX_ATTEMPTS


def test_failed_update_can_be_retried(synced, ada, django_capture_on_commit_callbacks):
    update = assign(2)
    AliasUpdate.objects.filter(pk=update.pk).update(state=AliasUpdateState.FAILED, attempts=9)

    with django_capture_on_commit_callbacks() as callbacks:
        update = registry_alias_retry(alias_update=update, actor=ada)

    assert update.state == AliasUpdateState.PENDING and update.attempts == 0
    assert len(callbacks) == 1
    with pytest.raises(Conflict):
        registry_alias_retry(alias_update=update, actor=ada)


@pytest.mark.parametrize("alias", ["latest", "v3", "", "prod east", "a" * 256])
def test_alias_names_mlflow_would_refuse_are_refused_now(synced, alias):
    with pytest.raises(DomainError):
        assign(2, alias=alias)


def test_task_applies_with_the_configured_registry(synced, settings):
    from apps.registry.tasks import registry_set_alias

    settings.MLFLOW_TRACKING_URI = synced.uri
    update = assign(3)

    registry_set_alias.apply(args=[update.pk]).get()

    update.refresh_from_db()
    assert update.state == AliasUpdateState.DONE
    assert mlflow_alias(synced) == 3


def test_sweeper_queues_due_updates(synced, unreachable_mlflow_uri):
    from apps.registry.tasks import registry_retry_alias_updates

    update = assign(2)
    AliasUpdate.objects.filter(pk=update.pk).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )
    done = assign(3, alias="staging")
    registry_alias_apply(alias_update_id=done.pk, client=synced.registry_client())

    assert alias_updates_due() == [update.pk]
    assert registry_retry_alias_updates.apply().get() == 1
