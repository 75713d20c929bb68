"""The unified diff reviewers read before approving: the remote's files vs this release's."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass

import yaml


def unified_diff(current: Mapping[str, str], proposed: Mapping[str, str], *, folder: str) -> str:
    """A git-style unified diff of a release folder, file by file in name order.

    ``current`` is what the remote holds now (empty for a first deploy), ``proposed``
    what the release will write. Files only in ``current`` show as deleted, because the
    writer replaces the folder's contents. Returns "" when nothing changes.
    """
    folder = folder.strip("/")
    chunks: list[str] = []
    for name in sorted(set(current) | set(proposed)):
        before, after = current.get(name), proposed.get(name)
        if before == after:
            continue
        path = f"{folder}/{name}" if folder else name
        header = [f"diff --git a/{path} b/{path}\n"]
        if before is None:
            header.append("new file\n")
        elif after is None:
            header.append("deleted file\n")
        lines = difflib.unified_diff(
            _lines(before),
            _lines(after),
            fromfile=f"a/{path}" if before is not None else "/dev/null",
            tofile=f"b/{path}" if after is not None else "/dev/null",
            n=3,
        )
        chunks.append("".join(header) + "".join(lines))
    return "".join(chunks)


def _lines(text: str | None) -> list[str]:
    if not text:
        return []
    lines = text.splitlines(keepends=True)
    if not lines[-1].endswith("\n"):
        lines[-1] += "\n"  # rendered files always end in one; keep the diff line-based
    return lines


# --- What changes, in words -------------------------------------------------------------
# Reviewers who are not Kubernetes people read a sentence per object ("Deployment
# churn-model: replicas 2 -> 3; container image unchanged; env LOG_LEVEL added") above the
# raw diff. Values that are long, paths or identifiers are only said to have changed: a
# summary full of URIs and UUIDs is what the raw diff already is.

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
_HEX_ID = re.compile(r"\b[0-9a-f]{24,}\b", re.I)
_PLAIN_MAX = 32


@dataclass(frozen=True)
class ObjectChange:
    """One manifest object's change: ``kind`` and ``name`` from the YAML, ``status`` one
    of added / removed / changed, ``details`` short phrases in plain words."""

    kind: str
    name: str
    status: str
    details: tuple[str, ...] = ()

    @property
    def sentence(self) -> str:
        head = f"{self.kind} {self.name}"
        if self.status != "changed":
            return f"{head}: {self.status}"
        return f"{head}: " + "; ".join(self.details) if self.details else head


def structured_changes(
    current: Mapping[str, str], proposed: Mapping[str, str]
) -> list[ObjectChange]:
    """The objects of a release folder that change, compared by kind and name over the
    parsed YAML (every document of every file), in kind/name order. Unchanged objects are
    left out; a file that is not YAML counts as an object of kind "File"."""
    before, after = _objects(current), _objects(proposed)
    changes = []
    for key in sorted(set(before) | set(after)):
        kind, name = key
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        if old is None:
            changes.append(ObjectChange(kind, name, "added"))
        elif new is None:
            changes.append(ObjectChange(kind, name, "removed"))
        else:
            changes.append(ObjectChange(kind, name, "changed", tuple(_details(old, new))))
    return changes


def _objects(files: Mapping[str, str]) -> dict[tuple[str, str], object]:
    objects: dict[tuple[str, str], object] = {}
    for filename in sorted(files):
        try:
            docs = [d for d in yaml.safe_load_all(files[filename]) if d is not None]
        except yaml.YAMLError:
            docs = None
        if not docs or not all(isinstance(d, dict) for d in docs):
            objects[("File", filename)] = files[filename]
            continue
        for doc in docs:
            kind = str(doc.get("kind") or "Object")
            name = str((doc.get("metadata") or {}).get("name") or filename)
            objects[(kind, name)] = doc
    return objects


def _details(old, new) -> list[str]:
    if not isinstance(old, dict) or not isinstance(new, dict):
        return ["content changed"]
    details: list[str] = []
    old_c, new_c = _containers(old), _containers(new)
    if old_c or new_c:
        details.extend(_container_details(old_c, new_c))
    old_flat = _flatten(_without_containers(old))
    new_flat = _flatten(_without_containers(new))
    bookkeeping = False
    for path in sorted(set(old_flat) | set(new_flat)):
        a, b = old_flat.get(path), new_flat.get(path)
        if a == b:
            continue
        if _is_bookkeeping(path):
            # Labels and annotations echo the model version and release id on every
            # object: one phrase says so instead of a dozen identical ones.
            bookkeeping = True
            continue
        label = _label(path)
        if path not in old_flat:
            details.append(f"{label} added" + (f" ({_plain(b)})" if _is_plain(b) else ""))
        elif path not in new_flat:
            details.append(f"{label} removed")
        elif _is_plain(a) and _is_plain(b):
            details.append(f"{label} {_plain(a)} -> {_plain(b)}")
        else:
            details.append(f"{label} changed")
    if bookkeeping:
        details.append("labels and annotations updated")
    return details or ["formatting changed"]


def _is_bookkeeping(path: str) -> bool:
    parts = path.split(".")
    return any(
        part == "metadata" and parts[i + 1 : i + 2] in (["labels"], ["annotations"])
        for i, part in enumerate(parts)
    )


def _containers(doc: dict) -> dict[str, dict]:
    """Containers by name, wherever the pod template keeps them (Deployment, CronJob)."""
    spec = doc.get("spec") or {}
    for path in (("template", "spec"), ("jobTemplate", "spec", "template", "spec")):
        node = spec
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and isinstance(node.get("containers"), list):
            return {str(c.get("name", i)): c for i, c in enumerate(node["containers"])}
    return {}


def _without_containers(doc: dict) -> dict:
    def strip(node):
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k != "containers"}
        return node

    return strip(doc)


def _container_details(old: dict[str, dict], new: dict[str, dict]) -> list[str]:
    details = []
    for name in sorted(set(old) | set(new)):
        a, b = old.get(name), new.get(name)
        prefix = "container" if len(set(old) | set(new)) == 1 else f"container {name}"
        if a is None:
            details.append(f"{prefix} added")
            continue
        if b is None:
            details.append(f"{prefix} removed")
            continue
        details.append(
            f"{prefix} image changed"
            if a.get("image") != b.get("image")
            else f"{prefix} image unchanged"
        )
        old_env, new_env = _env(a), _env(b)
        for var in sorted(set(old_env) | set(new_env)):
            if var not in old_env:
                details.append(f"env {var} added")
            elif var not in new_env:
                details.append(f"env {var} removed")
            elif old_env[var] != new_env[var]:
                details.append(f"env {var} changed")
        rest_a = {k: v for k, v in a.items() if k not in ("image", "env")}
        rest_b = {k: v for k, v in b.items() if k not in ("image", "env")}
        flat_a, flat_b = _flatten(rest_a), _flatten(rest_b)
        for path in sorted(set(flat_a) | set(flat_b)):
            x, y = flat_a.get(path), flat_b.get(path)
            if x == y:
                continue
            if _is_plain(x) and _is_plain(y) and x is not None and y is not None:
                details.append(f"{path} {_plain(x)} -> {_plain(y)}")
            else:
                details.append(f"{path} {_verb(x, y)}")
    return details


def _verb(before, after) -> str:
    return "added" if before is None else "removed" if after is None else "changed"


def _env(container: dict) -> dict[str, object]:
    return {
        str(e.get("name")): e.get("value", e.get("valueFrom"))
        for e in container.get("env") or []
        if isinstance(e, dict)
    }


def _flatten(node, prefix: str = "") -> dict[str, object]:
    if isinstance(node, dict):
        flat: dict[str, object] = {}
        for key, value in node.items():
            flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: node}


def _label(path: str) -> str:
    """``spec.replicas`` reads as "replicas"; metadata and spec are implied."""
    for lead in ("spec.", "metadata."):
        if path.startswith(lead):
            return path[len(lead) :]
    return path


def _is_plain(value) -> bool:
    if isinstance(value, bool | int | float):
        return True
    if not isinstance(value, str) or len(value) > _PLAIN_MAX:
        return False
    return "://" not in value and not _UUID.search(value) and not _HEX_ID.search(value)


def _plain(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)
