"""The audit chain lock comes first in every audited transaction (``audited_atomic``).

Measured before: parallel deploys deadlocked 33 times in 2 minutes. The status poll held
the audit chain lock (taken by ``audit_record`` late in its transaction) and then updated
an alias-update row, while ``registry.set_alias`` held that row and then asked for the
audit chain lock. These tests replay that interleaving step by step on two connections:
with the old order it deadlocks; with ``audited_atomic`` the second transaction waits for
the first and both complete. The rest pins the guard rails that keep the order.
"""

from __future__ import annotations

import threading
import uuid

import pytest
from django.db import OperationalError, connection, transaction
from django.test.utils import CaptureQueriesContext

from apps.audit.models import AuditEvent
from apps.audit.selectors import audit_chain_verify
from apps.audit.services import (
    _AUDIT_CHAIN_LOCK,
    AuditLockOrderError,
    audit_record,
    audit_record_many,
    audited_atomic,
    in_audited_transaction,
)
from apps.registry.models import AliasUpdate, AliasUpdateState
from tests import factories
from tests.waiting import wait_until

WAIT = 20  # seconds: generous for a busy 2-core machine; normally well under one


def _event(**extra):
    return {"system_actor": "test", "action": "test.lock", "target_type": "t", "target_id": 1} | (
        extra
    )


# --- guard rails (any database) ---------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_audit_record_in_a_plain_atomic_is_refused_with_the_reason():
    refused = pytest.raises(AuditLockOrderError, match="did not start with audited_atomic")
    with refused, transaction.atomic():
        audit_record(**_event())
    refused_many = pytest.raises(AuditLockOrderError, match="audit_record_many in a transaction")
    with refused_many, transaction.atomic():
        audit_record_many(system_actor="test", events=[_event()])
    assert not AuditEvent.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_audited_atomic_inside_a_plain_transaction_is_refused():
    """That transaction may already hold row locks: taking the chain lock now is the cycle."""
    refused = pytest.raises(AuditLockOrderError, match="did not start with audited_atomic")
    with refused, transaction.atomic(), audited_atomic():
        pass


@pytest.mark.django_db(transaction=True)
def test_nested_blocks_and_savepoints_inside_audited_atomic_may_audit():
    @audited_atomic
    def decorated():
        assert in_audited_transaction()
        audit_record(**_event(target_id=2))

    with audited_atomic():
        audit_record(**_event(target_id=1))
        with transaction.atomic():  # a savepoint, e.g. around an IntegrityError
            audit_record(**_event(target_id=9))
            transaction.set_rollback(True)
        decorated()
        with audited_atomic():
            audit_record(**_event(target_id=3))
    assert not in_audited_transaction()
    assert list(AuditEvent.objects.order_by("id").values_list("target_id", flat=True)) == [
        "1",
        "2",
        "3",
    ]
    assert audit_chain_verify()[1] is None


@pytest.mark.django_db(transaction=True)
def test_an_exception_rolls_back_the_change_and_its_event():
    with pytest.raises(ValueError), audited_atomic():
        audit_record(**_event())
        raise ValueError("boom")
    assert not AuditEvent.objects.exists()
    assert not in_audited_transaction()


# --- PostgreSQL: the lock comes first, and the old cycle is gone ------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_chain_lock_is_the_transactions_first_statement():
    with CaptureQueriesContext(connection) as captured, audited_atomic():
        AliasUpdate.objects.count()
    sql = [q["sql"] for q in captured.captured_queries if q["sql"] != "BEGIN"]
    assert "pg_advisory_xact_lock" in sql[0], sql


def _chain_lock_waiters() -> int:
    """Sessions waiting for the audit chain lock (a 32-bit key: classid 0, objid key)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            "AND classid = 0 AND objid = %s AND database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database())",
            [_AUDIT_CHAIN_LOCK],
        )
        return cursor.fetchone()[0]


def _row_waiters() -> int:
    """Sessions waiting for a row lock (a transactionid or tuple lock)."""
    with connection.cursor() as cursor:
        # Row waits carry no database in pg_locks: count only this database's sessions, so
        # another test run on the same server cannot be mistaken for ours.
        cursor.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE NOT l.granted AND l.locktype IN ('transactionid', 'tuple') "
            "AND a.datname = current_database()"
        )
        return cursor.fetchone()[0]


def _alias_update() -> AliasUpdate:
    mv = factories.make_model_version("shared-model", 1)
    return AliasUpdate.objects.create(model_version=mv, alias="staging", release_uid=uuid.uuid4())


def _run(*targets):
    errors: list[BaseException] = []

    def wrap(target):
        try:
            target()
        except BaseException as exc:  # reported by the caller
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=wrap, args=(t,)) for t in targets]
    for thread in threads:
        thread.start()
    return threads, errors


def _join(threads):
    for thread in threads:
        thread.join(WAIT * 3)
        assert not thread.is_alive(), "a transaction never finished"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_control_the_old_order_deadlocks():
    """Control: the same two transactions taking the chain lock where ``audit_record`` used
    to (after the row) deadlock. This is what the fix must prevent."""
    update = _alias_update()
    row_held, chain_held = threading.Event(), threading.Event()

    def set_alias_old():
        with transaction.atomic():
            AliasUpdate.objects.select_for_update(no_key=True).get(pk=update.pk)
            row_held.set()
            assert chain_held.wait(WAIT)
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_AUDIT_CHAIN_LOCK])

    def status_poll_old():
        assert row_held.wait(WAIT)
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_AUDIT_CHAIN_LOCK])
            chain_held.set()
            wait_until(_chain_lock_waiters, timeout=WAIT, message="set_alias to wait")
            AliasUpdate.objects.filter(pk=update.pk).update(state=AliasUpdateState.SUPERSEDED)

    threads, errors = _run(set_alias_old, status_poll_old)
    _join(threads)
    assert len(errors) == 1, errors
    assert isinstance(errors[0], OperationalError) and "deadlock detected" in str(errors[0])


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_original_cycle_now_waits_and_completes():
    """set_alias holds the alias-update row and then audits; the status poll audits and
    then updates that row. Started in the deadlocking interleaving, the poll now waits at
    the start of its transaction (the chain lock), then runs once set_alias commits."""
    update = _alias_update()
    row_held, poll_waiting = threading.Event(), threading.Event()
    order: list[str] = []

    def set_alias():
        with audited_atomic():
            AliasUpdate.objects.select_for_update(no_key=True).get(pk=update.pk)
            row_held.set()
            assert poll_waiting.wait(WAIT)
            AliasUpdate.objects.filter(pk=update.pk).update(state=AliasUpdateState.DONE)
            audit_record(**_event(action="registry.alias_set", target_id=update.pk))
            order.append("set_alias")

    def status_poll():
        assert row_held.wait(WAIT)
        with audited_atomic():
            audit_record(**_event(action="release.live", target_id=update.pk))
            AliasUpdate.objects.filter(pk=update.pk).update(state=AliasUpdateState.SUPERSEDED)
            order.append("status_poll")

    threads, errors = _run(set_alias, status_poll)
    # The poll is parked on the chain lock, not on the row: it holds nothing set_alias needs.
    wait_until(_chain_lock_waiters, timeout=WAIT, message="the status poll to wait")
    assert _row_waiters() == 0
    poll_waiting.set()
    _join(threads)
    assert not errors, errors
    assert order == ["set_alias", "status_poll"]
    update.refresh_from_db()
    assert update.state == AliasUpdateState.SUPERSEDED
    actions = list(AuditEvent.objects.order_by("id").values_list("action", flat=True))
    assert actions == ["registry.alias_set", "release.live"]
    assert audit_chain_verify()[1] is None
