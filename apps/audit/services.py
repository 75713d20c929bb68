"""Writing to the audit log. The only way rows get into AuditEvent."""

from __future__ import annotations

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

log = logging.getLogger(__name__)


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

    Must run inside ``transaction.atomic`` so the event commits or rolls back together
    with the change it describes. Appends are serialised (advisory lock on PostgreSQL,
    IMMEDIATE transactions on SQLite) because each row hashes the one before it; callers
    record their event last so the lock is held only until their commit.
    """
    if not connection.in_atomic_block:
        raise RuntimeError("audit_record must be called inside transaction.atomic()")
    if (actor is None) == (system_actor is None):
        raise ValueError("give exactly one of actor (a user) or system_actor (a name)")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_AUDIT_CHAIN_LOCK])
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
    if not connection.in_atomic_block:
        raise RuntimeError("audit_record_many must be called inside transaction.atomic()")
    if not system_actor:
        raise ValueError("give the system_actor (a name)")
    if not events:
        return []
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_AUDIT_CHAIN_LOCK])
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
    with transaction.atomic():
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
