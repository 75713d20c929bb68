"""Writing to the audit log. The only way rows get into AuditEvent.

Lock order (no deadlock by construction). Each row hashes the one before it, so appends
are serialised by one PostgreSQL transaction-level advisory lock, the *audit chain lock*,
held until commit. Every transaction that may write an audit row opens with
``audited_atomic()``, whose first statement takes that lock; only then does it lock rows.
So every audited transaction takes its locks in one order:

1. the audit chain lock (first statement, held to commit);
2. rows of releases, services and targets, several of one table in primary-key order
   (``order_by("pk").select_for_update()``);
3. registry rows (alias updates, registered models, model versions).

Two audited transactions can then never each hold what the other waits for: whoever has
the chain lock has no competitor for rows among audited writers, and a non-audited
writer never asks for the chain lock. ``audit_record`` refuses to run in a transaction
that did not start this way (it could take the chain lock after row locks: the cycle
that deadlocked parallel deploys). Blocking advisory locks of other kinds (the GitOps
repository writer lock) are taken outside any transaction and never inside an audited
one; try-locks (single-flight, registry alias/sync) never wait, so they cannot close a
cycle. See docs/reliability.md, "Lock order".

On SQLite there is no lock to take: IMMEDIATE transactions serialise writers already.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from django.db import connection, transaction
from django.utils import timezone

from apps.audit.anchors import Anchor, anchor_file_append, anchor_file_path, anchor_text
from apps.audit.chain import GENESIS, row_digest
from apps.audit.models import AuditEvent, ChainStatus
from apps.audit.selectors import audit_anchors, audit_chain_report
from apps.audit.verify import ChainReport, proven_report
from apps.core.request_id import current_request_id

# Arbitrary constant naming the audit chain's advisory lock on PostgreSQL.
_AUDIT_CHAIN_LOCK = 0x51_1B_A7_A0
# Set on the outermost Atomic block that audited_atomic opened: it lives exactly as long
# as the transaction (Django pops the block on exit), so nothing needs resetting.
_AUDITED = "_slipway_audited"

NOT_AUDITED_MESSAGE = (
    "audit_record in a transaction that did not start with audited_atomic: it could "
    "deadlock (the audit chain lock must be taken before any row lock)"
)

log = logging.getLogger(__name__)


class AuditLockOrderError(RuntimeError):
    """A programming error: an audited write in a transaction not opened by
    ``audited_atomic`` (so the audit chain lock might come after row locks)."""


def _real_blocks() -> list:
    """The connection's open atomic blocks, less the ones a test case wraps tests in
    (those stand for "no transaction yet" to the code under test)."""
    return [b for b in connection.atomic_blocks if not getattr(b, "_from_testcase", False)]


def in_audited_transaction() -> bool:
    """Whether the current transaction was opened by ``audited_atomic``."""
    blocks = _real_blocks()
    return bool(blocks) and getattr(blocks[0], _AUDITED, False)


class _AuditedAtomic:
    """``transaction.atomic`` whose transaction starts by taking the audit chain lock."""

    def __init__(self, *, savepoint: bool = True) -> None:
        self._savepoint = savepoint
        self._stack: list = []  # the Atomic of each open use (an instance may be re-entered)

    def __enter__(self):
        outermost = not _real_blocks()
        if not outermost and not in_audited_transaction():
            raise AuditLockOrderError(
                "audited_atomic inside a transaction that did not start with audited_atomic: "
                "it could deadlock (the audit chain lock must be taken before any row lock)"
            )
        atomic = transaction.atomic(savepoint=self._savepoint)
        atomic.__enter__()
        self._stack.append(atomic)
        if outermost:
            setattr(atomic, _AUDITED, True)
            if connection.vendor == "postgresql":
                try:
                    with connection.cursor() as cursor:
                        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_AUDIT_CHAIN_LOCK])
                except BaseException as exc:
                    self._stack.pop()
                    if not atomic.__exit__(type(exc), exc, exc.__traceback__):
                        raise
        return None

    def __exit__(self, exc_type, exc, tb):
        return self._stack.pop().__exit__(exc_type, exc, tb)


def audited_atomic(func=None, *, savepoint: bool = True):
    """``transaction.atomic`` for every transaction that may write an audit row: as a
    decorator (``@audited_atomic``) or a context manager (``with audited_atomic():``).

    Outermost, it opens the transaction and takes the audit chain lock (PostgreSQL) as its
    first statement, so the transaction's locks follow the one documented order (module
    docstring). Nested inside another ``audited_atomic`` it is a plain savepoint. Nested
    inside a transaction that did not start audited it raises ``AuditLockOrderError``:
    that transaction may already hold row locks. A transaction that only sometimes
    audits still opens this way (the uncontended lock costs one round trip).
    """
    if func is not None:

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with _AuditedAtomic(savepoint=savepoint):
                return func(*args, **kwargs)

        return wrapper
    return _AuditedAtomic(savepoint=savepoint)


def _require_audited(name: str) -> None:
    if not connection.in_atomic_block:
        raise RuntimeError(f"{name} must be called inside audited_atomic() (transaction.atomic)")
    if not in_audited_transaction():
        raise AuditLockOrderError(NOT_AUDITED_MESSAGE.replace("audit_record", name, 1))


def audit_record(
    *,
    actor=None,
    system_actor: str | None = None,
    action: str,
    target_type: str,
    target_id,
    before=None,
    after=None,
) -> AuditEvent:
    """Append one event to the chain, inside the caller's transaction.

    Must run inside ``audited_atomic`` so the event commits or rolls back together with
    the change it describes, and so the audit chain lock that serialises appends was the
    transaction's first lock (module docstring: lock order).
    """
    _require_audited("audit_record")
    if (actor is None) == (system_actor is None):
        raise ValueError("give exactly one of actor (a user) or system_actor (a name)")
    prev_hash = AuditEvent.objects.order_by("-id").values_list("hash", flat=True).first() or GENESIS
    fields = {
        "created_at": timezone.now(),
        "actor_label": actor.get_username() if actor is not None else f"system:{system_actor}",
        "action": action,
        "target_type": target_type,
        "target_id": str(target_id),
        "before": before,
        "after": after,
        "request_id": current_request_id(),
    }
    actor_id = actor.pk if actor is not None else None
    digest = row_digest(prev_hash=prev_hash, actor_id=actor_id, **fields)
    return AuditEvent.objects.create(actor_id=actor_id, prev_hash=prev_hash, hash=digest, **fields)


def audit_record_many(*, system_actor: str, events: Sequence[Mapping]) -> list[AuditEvent]:
    """Append several events by one system actor to the chain under one lock acquisition,
    inside the caller's transaction: one read of the chain's head and one INSERT, however
    many events (a poll in which a thousand services breach at once).

    Each mapping holds ``action``, ``target_type``, ``target_id`` and optionally
    ``before`` and ``after``. Rows are chained in the order given, each hashing the one
    before it exactly as ``audit_record`` does, so the chain verifies the same way.
    """
    _require_audited("audit_record_many")
    if not system_actor:
        raise ValueError("give the system_actor (a name)")
    if not events:
        return []
    prev_hash = AuditEvent.objects.order_by("-id").values_list("hash", flat=True).first() or GENESIS
    created_at = timezone.now()
    request_id = current_request_id()
    rows = []
    for event in events:
        fields = {
            "created_at": created_at,
            "actor_label": f"system:{system_actor}",
            "action": event["action"],
            "target_type": event["target_type"],
            "target_id": str(event["target_id"]),
            "before": event.get("before"),
            "after": event.get("after"),
            "request_id": request_id,
        }
        digest = row_digest(prev_hash=prev_hash, actor_id=None, **fields)
        rows.append(AuditEvent(actor_id=None, prev_hash=prev_hash, hash=digest, **fields))
        prev_hash = digest
    # One multi-row INSERT: ids come from the sequence in VALUES order, which is the
    # chain order verification walks; the lock keeps other appends out until commit.
    return AuditEvent.objects.bulk_create(rows)


def audit_record_standalone(**kwargs) -> AuditEvent:
    """Record an event that has no other write to ride with (e.g. a CSV export)."""
    with audited_atomic():
        return audit_record(**kwargs)


def audit_chain_status_save(*, report: ChainReport) -> ChainStatus:
    """Store a verification result for the audit page (overwrites the previous one)."""
    status, _ = ChainStatus.objects.update_or_create(
        pk=1,
        defaults={
            "checked_at": timezone.now(),
            "intact": report.intact,
            "events": report.events,
            "message": report.message,
            "proven_to_id": report.proven_to_id,
            "proven_by": report.proven_by[:500],
        },
    )
    return status


def audit_checkpoint(
    *, anchor_file: Path | None = None, git_dir: Path | None = None
) -> ChainReport:
    """Verify the chain against the anchors so far, then anchor its current head in the
    checkpoint file, so rows written while nothing deploys are vouched for too.

    A broken chain is not anchored: a new anchor would vouch for the tampered head. The
    head is read after verification, so a row appended meanwhile is simply anchored
    unverified until the next run (its link to the verified rows is checked then).
    """
    report = audit_chain_report(anchors=audit_anchors(anchor_file=anchor_file, git_dir=git_dir))
    if report.intact:
        head = AuditEvent.objects.order_by("-id").values_list("id", "hash").first()
        if head is not None and report.proven_to_id != head[0]:
            path = anchor_file or anchor_file_path()
            line = anchor_file_append(
                text=anchor_text(event_id=head[0], event_hash=head[1]),
                at=timezone.now().isoformat(),
                path=path,
            )
            source = f"anchor file {path} line {line}"
            anchor = Anchor(event_id=head[0], hash=head[1], source=source)
            report = proven_report(events=report.events, unanchored=0, anchor=anchor)
    else:
        log.error("audit checkpoint refused: %s", report.message)
    audit_chain_status_save(report=report)
    return report
