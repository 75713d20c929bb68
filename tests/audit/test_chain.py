import itertools
import threading

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction

from apps.audit.chain import GENESIS
from apps.audit.models import AuditEvent
from apps.audit.selectors import audit_chain_verify
from apps.audit.services import (
    audit_record,
    audit_record_many,
    audit_record_standalone,
    audited_atomic,
)


def _append(n, actor):
    for i in range(n):
        audit_record_standalone(
            actor=actor, action="test.event", target_type="thing", target_id=i, after={"i": i}
        )


def _tamper(sql, params):
    """Edit the table as a dishonest database user would: around the append-only trigger."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # A superuser can switch triggers off for their session; the chain still tells.
            cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(sql, params)
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL session_replication_role = origin")


@pytest.mark.django_db(transaction=True)
def test_record_outside_a_transaction_is_refused(alice):
    with pytest.raises(RuntimeError, match=r"transaction\.atomic"):
        audit_record(actor=alice, action="x", target_type="t", target_id=1)


def test_rows_link_to_the_previous_hash(alice):
    _append(3, alice)
    events = list(AuditEvent.objects.filter(action="test.event").order_by("id"))
    first = AuditEvent.objects.order_by("id").first()
    assert first.prev_hash == GENESIS
    assert events[1].prev_hash == events[0].hash
    assert events[2].prev_hash == events[1].hash
    assert len({e.hash for e in events}) == 3


def test_audit_verify_passes_on_an_untouched_chain(alice, capsys):
    _append(5, alice)
    call_command("audit_verify")
    assert "audit chain intact" in capsys.readouterr().out


def test_audit_verify_names_the_first_edited_row(alice):
    _append(5, alice)
    ids = list(AuditEvent.objects.order_by("id").values_list("id", flat=True))
    victim = ids[2]
    _tamper("UPDATE audit_auditevent SET after = %s WHERE id = %s", ['{"i": 999}', victim])
    _checked, broken = audit_chain_verify()
    assert broken is not None and broken.event_id == victim
    assert "edited" in broken.reason
    with pytest.raises(CommandError, match=f"broken at event {victim}"):
        call_command("audit_verify")


def test_a_deleted_row_breaks_the_link_at_the_next_one(alice):
    _append(5, alice)
    ids = list(AuditEvent.objects.order_by("id").values_list("id", flat=True))
    _tamper("DELETE FROM audit_auditevent WHERE id = %s", [ids[1]])
    _, broken = audit_chain_verify()
    assert broken.event_id == ids[2]
    assert "link broken" in broken.reason


def test_a_forger_without_the_key_cannot_rehash_an_edited_row(alice):
    """Recomputing a plain sha256 (what a database user could do) does not verify."""
    import hashlib

    _append(2, alice)
    victim = AuditEvent.objects.order_by("id").last()
    forged = hashlib.sha256(b"forged content").hexdigest()
    _tamper(
        "UPDATE audit_auditevent SET actor_label = %s, hash = %s WHERE id = %s",
        ["mallory", forged, victim.id],
    )
    _, broken = audit_chain_verify()
    assert broken.event_id == victim.id


@pytest.mark.postgres
def test_postgres_refuses_updates_and_deletes(alice):
    from django.db.utils import DatabaseError

    _append(1, alice)
    event = AuditEvent.objects.order_by("id").last()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(action="edited")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_appends_keep_one_unbroken_chain(people):
    alice = people["alice"]
    errors = []

    def worker():
        try:
            _append(10, alice)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    _checked, broken = audit_chain_verify()
    assert broken is None
    assert AuditEvent.objects.filter(action="test.event").count() == 40


# --- audit_record_many: a batch appended under one lock acquisition ----------------------


def _batch(n, *, start=0):
    return [
        {"action": "test.batch", "target_type": "thing", "target_id": start + i, "after": {"i": i}}
        for i in range(n)
    ]


def test_a_batch_is_chained_in_order_and_verifies_with_single_appends(alice):
    _append(2, alice)
    with audited_atomic():
        rows = audit_record_many(system_actor="metrics", events=_batch(5))
    _append(1, alice)

    batch = list(AuditEvent.objects.filter(action="test.batch").order_by("id"))
    assert [e.target_id for e in batch] == ["0", "1", "2", "3", "4"]
    assert [e.pk for e in batch] == [r.pk for r in rows]
    assert {e.actor_label for e in batch} == {"system:metrics"}
    assert batch[0].after == {"i": 0}
    before = AuditEvent.objects.filter(id__lt=batch[0].id).order_by("-id").first()
    assert batch[0].prev_hash == before.hash
    for previous, event in itertools.pairwise(batch):
        assert event.prev_hash == previous.hash
    after = AuditEvent.objects.filter(id__gt=batch[-1].id).order_by("id").first()
    assert after.prev_hash == batch[-1].hash
    _checked, broken = audit_chain_verify()
    assert broken is None


def test_a_batch_costs_the_same_queries_whatever_its_size(db):
    from django.test.utils import CaptureQueriesContext

    counts = []
    for size in (3, 300):
        with audited_atomic(), CaptureQueriesContext(connection) as captured:
            audit_record_many(system_actor="metrics", events=_batch(size))
        counts.append(len(captured.captured_queries))
    if connection.vendor == "postgresql":  # SQLite's INSERTs split at its parameter limit
        assert counts[0] == counts[1] == 2  # chain head, one INSERT (audited_atomic locked)
    assert AuditEvent.objects.filter(action="test.batch").count() == 303
    assert audit_chain_verify()[1] is None


def test_an_edited_row_inside_a_batch_is_found(alice):
    with audited_atomic():
        rows = audit_record_many(system_actor="metrics", events=_batch(4))
    with transaction.atomic():
        _tamper("UPDATE audit_auditevent SET target_id = %s WHERE id = %s", ["99", rows[2].pk])
    _checked, broken = audit_chain_verify()
    assert broken is not None and broken.event_id == rows[2].pk


@pytest.mark.django_db(transaction=True)
def test_a_batch_outside_a_transaction_is_refused():
    with pytest.raises(RuntimeError, match=r"transaction\.atomic"):
        audit_record_many(system_actor="metrics", events=_batch(1))


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_batches_and_single_appends_keep_one_unbroken_chain(people):
    alice = people["alice"]
    errors = []

    def batches(start):
        try:
            for n in range(5):
                with audited_atomic():
                    audit_record_many(
                        system_actor="metrics", events=_batch(20, start=start + 20 * n)
                    )
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    def singles():
        try:
            _append(10, alice)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=batches, args=(i * 1000,)) for i in range(2)]
    threads += [threading.Thread(target=singles) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    _checked, broken = audit_chain_verify()
    assert broken is None
    assert AuditEvent.objects.filter(action="test.batch").count() == 200
    assert AuditEvent.objects.filter(action="test.event").count() == 20
