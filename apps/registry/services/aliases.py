"""Alias updates: keep MLflow's aliases in step with what is live.

An update is a row (``AliasUpdate``) written with the caller's transaction and applied by
a task after commit; failed attempts are rescheduled in the database with backoff and
picked up by the sweeper, so MLflow being down never blocks or fails a release.
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from apps.audit.services import audit_record, audited_atomic
from apps.core.backoff import backoff_delay
from apps.core.errors import Conflict, DomainError
from apps.core.locks import try_advisory_lock
from apps.registry.client import (
    RELEASE_TAG,
    RegistryClient,
    RegistryNotFound,
    RegistryRejected,
    RegistryUnavailable,
)
from apps.registry.models import AliasUpdate, AliasUpdateState, ModelVersion, RegisteredModel
from apps.registry.queue import enqueue_set_alias_on_commit
from apps.registry.services._alias_map import mirror_alias_map

logger = logging.getLogger(__name__)

ALIAS_ACTOR = "registry-alias"

# Alias updates: first retry after 30 s, doubling to at most 30 min; after this many
# attempts (about a day of MLflow being down) the update is marked failed.
ALIAS_RETRY_BASE_SECONDS = 30
ALIAS_RETRY_MAX_SECONDS = 1800
ALIAS_MAX_ATTEMPTS = 60
# While an attempt runs, the sweeper leaves the update alone for this long.
ALIAS_ATTEMPT_LEASE_SECONDS = 120
# MLflow's alias rule (mlflow.utils.validation._validate_model_alias_name), checked early
# so a bad name is the caller's error now rather than a failed update later.
_ALIAS_RE = re.compile(r"^[\w\-]{1,255}$")
_RESERVED_ALIAS_RE = re.compile(r"^(latest|v\d+)$", re.IGNORECASE)


def registry_alias_assign(
    *, model_version: ModelVersion, alias: str, release_uid, actor_label: str
) -> AliasUpdate:
    """Ask for MLflow's ``alias`` to point at ``model_version`` (tagged with the release).

    Why asynchronous: the release is live whatever MLflow says; the alias is for the
    people and pipelines that load models by alias. So this only records the request and
    schedules the task after commit; MLflow being down never blocks or fails the caller.
    A rollback calls this with the older version, which moves the alias back. An older
    request for the same alias that has not been applied yet is superseded, so a late
    retry can never move the alias back to a version that is no longer live.
    """
    if not _ALIAS_RE.match(alias or "") or _RESERVED_ALIAS_RE.match(alias):
        raise DomainError(
            f"{alias!r} cannot be an MLflow alias: use letters, digits, '_' and '-', and not "
            "'latest' or 'v<number>'."
        )
    now = timezone.now()
    with audited_atomic():
        update = AliasUpdate.objects.create(
            model_version=model_version,
            alias=alias,
            release_uid=release_uid,
            requested_by=(actor_label or "")[:150],
            # If the task never runs (broker down at commit), the sweeper picks it up then.
            next_attempt_at=now + timedelta(seconds=ALIAS_RETRY_BASE_SECONDS),
        )
        superseded = AliasUpdate.objects.filter(
            model_version__name=model_version.name,
            alias=alias,
            state=AliasUpdateState.PENDING,
            pk__lt=update.pk,
        ).update(state=AliasUpdateState.SUPERSEDED, next_attempt_at=None)
        audit_record(
            system_actor=ALIAS_ACTOR,
            action="registry.alias_requested",
            target_type="model_version",
            target_id=model_version.pk,
            after={
                "model": model_version.name,
                "version": model_version.version,
                "alias": alias,
                "release_uid": str(update.release_uid),
                "requested_by": actor_label,
                "superseded": superseded,
            },
        )
        enqueue_set_alias_on_commit(alias_update_id=update.pk)
    return update


def registry_alias_retry(*, alias_update: AliasUpdate, actor) -> AliasUpdate:
    """Try a failed alias update again (MLflow fixed, alias allowed now...)."""
    with audited_atomic():
        update = AliasUpdate.objects.select_for_update(no_key=True).get(pk=alias_update.pk)
        if update.state != AliasUpdateState.FAILED:
            raise Conflict(
                f"Only a failed alias update can be retried; this one is {update.state}."
            )
        if (
            AliasUpdate.objects.filter(
                model_version__name=update.model_version.name,
                alias=update.alias,
                pk__gt=update.pk,
            )
            .exclude(state=AliasUpdateState.FAILED)
            .exists()
        ):
            raise Conflict(f"A newer update of alias {update.alias!r} exists; retry that one.")
        update.state, update.attempts = AliasUpdateState.PENDING, 0
        update.next_attempt_at = timezone.now() + timedelta(seconds=ALIAS_RETRY_BASE_SECONDS)
        update.save(update_fields=["state", "attempts", "next_attempt_at"])
        audit_record(
            actor=actor,
            action="registry.alias_retry",
            target_type="alias_update",
            target_id=update.pk,
            after={"alias": update.alias},
        )
        enqueue_set_alias_on_commit(alias_update_id=update.pk)
    return update


def registry_alias_apply(
    *, alias_update_id: int, client: RegistryClient | None = None
) -> AliasUpdate | None:
    """Make one attempt at an alias update (the task's body). Idempotent: an update that
    is no longer pending is left alone, so a redelivered task does nothing.

    Attempts on the same model and alias are serialised (PostgreSQL advisory lock, held
    around the MLflow calls and no transaction) and only the newest pending update is
    applied, so two attempts finishing out of order cannot leave the alias on the older
    version.
    """
    update = AliasUpdate.objects.select_related("model_version").filter(pk=alias_update_id).first()
    if update is None or update.state != AliasUpdateState.PENDING:
        return update
    mv = update.model_version
    with try_advisory_lock(f"registry-alias:{mv.name}:{update.alias}") as acquired:
        now = timezone.now()
        if not acquired:
            AliasUpdate.objects.filter(pk=update.pk, state=AliasUpdateState.PENDING).update(
                next_attempt_at=now + timedelta(seconds=10)
            )
            return update
        newer = (
            AliasUpdate.objects.filter(
                model_version__name=mv.name,
                alias=update.alias,
                pk__gt=update.pk,
            )
            .exclude(state=AliasUpdateState.SUPERSEDED)
            .exists()
        )
        if newer:
            AliasUpdate.objects.filter(pk=update.pk, state=AliasUpdateState.PENDING).update(
                state=AliasUpdateState.SUPERSEDED, next_attempt_at=None
            )
            update.refresh_from_db()
            return update
        claimed = AliasUpdate.objects.filter(pk=update.pk, state=AliasUpdateState.PENDING).update(
            last_attempt_at=now,
            next_attempt_at=now + timedelta(seconds=ALIAS_ATTEMPT_LEASE_SECONDS),
        )
        if not claimed:
            update.refresh_from_db()
            return update
        client = client or RegistryClient(budget_seconds=settings.MLFLOW_TIMEOUT_SECONDS * 3)
        try:
            client.set_alias(mv.name, update.alias, mv.version)
            client.set_version_tag(mv.name, mv.version, RELEASE_TAG, str(update.release_uid))
        except RegistryUnavailable as exc:
            _alias_attempt_failed(update, exc.message, retry=True)
        except (RegistryNotFound, RegistryRejected) as exc:
            _alias_attempt_failed(update, f"MLflow refused: {exc.message}", retry=False)
        else:
            _alias_attempt_succeeded(update)
    update.refresh_from_db()
    return update


def _alias_attempt_succeeded(update: AliasUpdate) -> None:
    mv = update.model_version
    now = timezone.now()
    with audited_atomic():
        done = AliasUpdate.objects.filter(pk=update.pk, state=AliasUpdateState.PENDING).update(
            state=AliasUpdateState.DONE,
            attempts=update.attempts + 1,
            done_at=now,
            last_error="",
            next_attempt_at=None,
        )
        if not done:
            return
        rm = RegisteredModel.objects.select_for_update(no_key=True).filter(name=mv.name).first()
        aliases = (
            dict(rm.aliases)
            if rm is not None
            else {
                a: row.version
                for row in ModelVersion.objects.filter(name=mv.name).exclude(aliases=[])
                for a in row.aliases
            }
        )
        before = aliases.get(update.alias)
        aliases[update.alias] = mv.version
        if rm is not None:
            rm.aliases = aliases
            rm.save(update_fields=["aliases"])
        mirror_alias_map(mv.name, aliases)
        row = ModelVersion.objects.select_for_update(no_key=True).get(pk=mv.pk)
        row.tags = {**row.tags, RELEASE_TAG: str(update.release_uid)}
        row.save(update_fields=["tags"])
        audit_record(
            system_actor=ALIAS_ACTOR,
            action="registry.alias_set",
            target_type="model_version",
            target_id=mv.pk,
            before={"alias": update.alias, "version": before},
            after={
                "alias": update.alias,
                "version": mv.version,
                "model": mv.name,
                "release_uid": str(update.release_uid),
                "attempts": update.attempts + 1,
            },
        )


def _alias_attempt_failed(update: AliasUpdate, message: str, *, retry: bool) -> None:
    attempts = update.attempts + 1
    now = timezone.now()
    give_up = not retry or attempts >= ALIAS_MAX_ATTEMPTS
    with audited_atomic():
        if give_up:
            changed = AliasUpdate.objects.filter(
                pk=update.pk, state=AliasUpdateState.PENDING
            ).update(
                state=AliasUpdateState.FAILED,
                attempts=attempts,
                last_error=message,
                next_attempt_at=None,
            )
            if changed:
                mv = update.model_version
                audit_record(
                    system_actor=ALIAS_ACTOR,
                    action="registry.alias_failed",
                    target_type="model_version",
                    target_id=mv.pk,
                    after={
                        "alias": update.alias,
                        "version": mv.version,
                        "model": mv.name,
                        "release_uid": str(update.release_uid),
                        "attempts": attempts,
                        "error": message[:500],
                    },
                )
        else:
            delay = backoff_delay(
                attempts, base=ALIAS_RETRY_BASE_SECONDS, cap=ALIAS_RETRY_MAX_SECONDS
            )
            AliasUpdate.objects.filter(pk=update.pk, state=AliasUpdateState.PENDING).update(
                attempts=attempts,
                last_error=message,
                next_attempt_at=now + timedelta(seconds=delay),
            )
    logger.warning(
        "registry alias %s -> %s: attempt %d failed: %s",
        update.alias,
        update.model_version,
        attempts,
        message,
    )
