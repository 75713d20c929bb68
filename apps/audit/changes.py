"""Audit rows in words: what changed ("state: pending approval -> approved", "alias prod:
v3 -> v1") and what it happened to ("churn-model v1", "release #42").

The stored ``before`` / ``after`` dicts are part of the hash chain and never change; this
module only reads them. One small formatter per action family, and a generic fallback
that renders every key as ``key: before -> after``, so a new action is readable the day
it is added.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from apps.audit.models import AuditEvent

ARROW = "->"
_CODE = re.compile(r"^[a-z]+(_[a-z]+)+$")
# Keys a family formatter already spelled out, or that only a machine needs.
_QUIET_KEYS = {"release_uid", "digest"}


def _words(value) -> str:
    """A stored value as a person reads it: states without underscores, lists joined."""
    if value is None or value == "":
        return "(none)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(_words(v) for v in value) or "(none)"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_words(v)}" for k, v in value.items()) or "(none)"
    text = str(value)
    # A code ("pending_approval") reads better spaced; free text and ids stay as stored.
    return text.replace("_", " ") if _CODE.match(text) else text


def _generic(before: dict, after: dict, *, skip: frozenset[str] = frozenset()) -> list[str]:
    lines = []
    for key in list(dict.fromkeys([*before, *after])):
        if key in skip or key in _QUIET_KEYS:
            continue
        old, new = before.get(key), after.get(key)
        label = key.replace("_", " ")
        if key in before and key in after and old != new:
            lines.append(f"{label}: {_words(old)} {ARROW} {_words(new)}")
        elif key in after:
            if new in (None, "", [], {}):
                continue  # a newly recorded empty value says nothing ("deleted: none")
            lines.append(f"{label}: {_words(new)}")
        else:
            lines.append(f"{label}: {_words(old)} {ARROW} (removed)")
    return lines


def _version(value) -> str:
    return f"v{value}" if value not in (None, "") else "(none)"


def _release(before: dict, after: dict) -> list[str]:
    lines = []
    if "state" in after:
        if "state" in before and before["state"] != after["state"]:
            lines.append(f"state: {_words(before['state'])} {ARROW} {_words(after['state'])}")
        else:
            lines.append(f"state: {_words(after['state'])}")
    return lines + _generic(before, after, skip=frozenset({"state"}))


def _alias(before: dict, after: dict) -> list[str]:
    alias = after.get("alias") or before.get("alias") or "?"
    lines = []
    if "version" in before:
        old, new = _version(before.get("version")), _version(after.get("version"))
        lines.append(f"alias {alias}: {old} {ARROW} {new}")
    elif "version" in after:
        lines.append(f"alias {alias} {ARROW} {_version(after['version'])}")
    else:
        lines.append(f"alias {alias}")
    return lines + _generic({}, after, skip=frozenset({"alias", "version", "model"}))


FAMILIES: dict[str, Callable[[dict, dict], list[str]]] = {
    "release.": _release,
    "registry.alias_": _alias,
}


def change_lines(event: AuditEvent) -> list[str]:
    """The change an audit row records, as short lines of text."""
    before = event.before if isinstance(event.before, dict) else {}
    after = event.after if isinstance(event.after, dict) else {}
    if event.before is not None and not isinstance(event.before, dict):
        before = {"value": event.before}
    if event.after is not None and not isinstance(event.after, dict):
        after = {"value": event.after}
    for prefix, formatter in FAMILIES.items():
        if event.action.startswith(prefix):
            return formatter(before, after)
    return _generic(before, after)


def target_label(event: AuditEvent) -> str:
    """What the row happened to, in words. A model-version row names the model and its
    version from the row's own data: the stored ``target_id`` is the mirror's database id,
    which read like a version number ("model_version:3" for version 1)."""
    after = event.after if isinstance(event.after, dict) else {}
    before = event.before if isinstance(event.before, dict) else {}
    if event.target_type == "model_version":
        model = after.get("model") or before.get("model")
        version = after.get("version", before.get("version"))
        if model and version not in (None, ""):
            return f"{model} v{version}"
        return f"model version (id {event.target_id})"
    if event.target_type == "release":
        return f"release #{event.target_id}"
    return f"{event.target_type.replace('_', ' ')} {event.target_id}".strip()
