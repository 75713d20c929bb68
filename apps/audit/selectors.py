"""Reading the audit log: filtered lists for the page and export, and verification."""

from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet

from apps.audit.chain import ChainBreak, first_break
from apps.audit.models import AuditEvent


def audit_event_list(
    *,
    actor: str = "",
    action: str = "",
    target: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[AuditEvent]:
    events = AuditEvent.objects.all()
    if actor:
        events = events.filter(actor_label=actor)
    if action:
        events = events.filter(action__startswith=action)
    if target:
        target_type, _, target_id = target.partition(":")
        events = events.filter(target_type=target_type)
        if target_id:
            events = events.filter(target_id=target_id)
    if since:
        events = events.filter(created_at__gte=since)
    if until:
        events = events.filter(created_at__lt=until)
    return events.order_by("-id")


def audit_chain_verify(*, chunk_size: int = 2000) -> tuple[int, ChainBreak | None]:
    """Verify the whole chain in id order; return (rows checked, first break or None)."""
    checked = 0

    def rows():
        nonlocal checked
        for event in AuditEvent.objects.order_by("id").iterator(chunk_size=chunk_size):
            checked += 1
            yield event

    broken = first_break(rows())
    return checked, broken
