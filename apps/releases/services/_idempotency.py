"""Idempotency keys: the same key with the same request returns the first result; the
same key with any other request is refused (409), on every action that takes a key.

A fingerprint (SHA-256 of the canonical request: the action and every input, keys
sorted) is stored with the key on the release it created, so "the same request" means
exactly that, including fields that are not compared one by one, like the reason.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from apps.core.errors import Conflict
from apps.releases.models import Release


def request_fingerprint(action: str, **inputs: Any) -> str:
    """SHA-256 of the canonical JSON of an action and its inputs."""
    canonical = json.dumps(
        {"action": action, **inputs}, sort_keys=True, separators=(",", ":"), ensure_ascii=True
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def keyed_release(*, actor, key: str | None) -> Release | None:
    """The release this person already made with this key, if any."""
    if not key:
        return None
    return Release.objects.filter(requested_by=actor, idempotency_key=key).first()


def replay(existing: Release, *, fingerprint: str, legacy_same: bool) -> Release:
    """The release to answer a repeated key with, or a Conflict when the request differs.

    ``legacy_same`` decides for releases made before fingerprints were stored.
    """
    same = (
        existing.idempotency_fingerprint == fingerprint
        if existing.idempotency_fingerprint
        else legacy_same
    )
    if not same:
        raise Conflict(
            f"This Idempotency-Key was already used for release #{existing.pk} with a "
            "different request; use a new key for a new request."
        )
    return existing
