"""Reading the audit log: filtered lists for the page and export, and verification."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.db.models import QuerySet

from apps.audit.anchors import Anchor, anchor_text, anchors_from_file, anchors_from_git
from apps.audit.chain import ChainBreak, first_break
from apps.audit.models import AuditEvent, ChainStatus
from apps.audit.scopes import service_scope
from apps.audit.verify import ChainReport, verify_with_anchors


def audit_event_list(
    *,
    actor: str = "",
    action: str = "",
    target: str = "",
    service: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[AuditEvent]:
    """Events matching every given filter, newest first (``-id``: a stable order, since
    ids only grow, for pages and exports alike)."""
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
    if service:
        events = events.filter(service_scope(service))
    if since:
        events = events.filter(created_at__gte=since)
    if until:
        events = events.filter(created_at__lt=until)
    return events.order_by("-id")


def audit_action_names() -> list[str]:
    """Every action seen in the log, offered as suggestions in the filter form: one
    DISTINCT over the indexed ``action`` column, whatever the page."""
    return list(AuditEvent.objects.order_by("action").values_list("action", flat=True).distinct())


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


def audit_anchor_head() -> str | None:
    """The anchor of the newest committed row, for a GitOps commit trailer; None while
    the log is empty (there is nothing to vouch for yet)."""
    head = AuditEvent.objects.order_by("-id").values_list("id", "hash").first()
    if head is None:
        return None
    return anchor_text(event_id=head[0], event_hash=head[1])


def audit_anchors(*, anchor_file: Path | None = None, git_dir: Path | None = None) -> list[Anchor]:
    """Every anchor Slipway can read: the checkpoint file and the GitOps clone's trailers
    (``AUDIT_ANCHOR_FILE`` and ``AUDIT_ANCHOR_GIT_DIR`` unless given)."""
    git_dir = git_dir or Path(settings.AUDIT_ANCHOR_GIT_DIR or settings.GITOPS_WORKDIR)
    return anchors_from_file(anchor_file) + anchors_from_git(git_dir)


def audit_chain_report(*, anchors: list[Anchor], chunk_size: int = 2000) -> ChainReport:
    """Verify the whole chain in id order and hold it against ``anchors``."""
    rows = AuditEvent.objects.order_by("id").iterator(chunk_size=chunk_size)
    return verify_with_anchors(rows, anchors)


def audit_chain_status() -> ChainStatus | None:
    """The last stored verification result (one cheap query for the audit page)."""
    return ChainStatus.objects.filter(pk=1).first()
