"""The hash chain: how a row's hash is computed, and how a run of rows is verified."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings

GENESIS = "0" * 64


def canonical(value) -> str:
    """Stable JSON: sorted keys, no whitespace, so the same content hashes the same."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def row_digest(
    *,
    prev_hash: str,
    created_at: datetime,
    actor_label: str,
    actor_id: int | None,
    action: str,
    target_type: str,
    target_id: str,
    before,
    after,
    request_id: str,
) -> str:
    body = canonical(
        {
            "prev": prev_hash,
            "at": created_at.isoformat(),
            "actor": actor_label,
            "actor_id": actor_id,
            "action": action,
            "target": [target_type, target_id],
            "before": before,
            "after": after,
            "request_id": request_id,
        }
    )
    key = settings.AUDIT_CHAIN_KEY.encode()
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class ChainBreak:
    event_id: int
    reason: str


def first_break(events: Iterable) -> ChainBreak | None:
    """Walk rows in id order; return the first whose link or content does not verify."""
    expected_prev = GENESIS
    for event in events:
        if event.prev_hash != expected_prev:
            return ChainBreak(event.id, "previous-hash link broken (a row was removed or inserted)")
        recomputed = row_digest(
            prev_hash=event.prev_hash,
            created_at=event.created_at,
            actor_label=event.actor_label,
            actor_id=event.actor_id,
            action=event.action,
            target_type=event.target_type,
            target_id=event.target_id,
            before=event.before,
            after=event.after,
            request_id=event.request_id,
        )
        if not hmac.compare_digest(recomputed, event.hash):
            return ChainBreak(event.id, "content does not match its hash (the row was edited)")
        expected_prev = event.hash
    return None
