"""A small kustomize renderer for the tests: there is no kustomize binary here.

It understands exactly what deploy/kubernetes uses, and refuses anything else, so a
kustomization that grows a feature this cannot render fails loudly instead of being
checked half-way:

- ``resources``: YAML files (one or more documents) and folders holding a
  kustomization.yaml, in order;
- ``images``: ``name`` with ``newName``, ``newTag`` and/or ``digest``, applied to the
  containers and init containers of pod templates;
- ``patches``: JSON 6902 patches (``add``, ``replace``, ``remove``) given inline, with a
  ``target`` of kind, name and optionally namespace/version/group.

Objects are identified by (apiVersion, kind, namespace, name); a duplicate is an error,
as in kustomize.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
_SUPPORTED = {"apiVersion", "kind", "resources", "images", "patches"}


class KustomizeError(Exception):
    pass


def load_documents(path: Path) -> list[dict[str, Any]]:
    with path.open() as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


def render(folder: Path) -> list[dict[str, Any]]:
    """The objects ``kubectl kustomize folder`` would output (in resource order)."""
    folder = Path(folder)
    kustomization = _kustomization(folder)
    unknown = set(kustomization) - _SUPPORTED
    if unknown:
        raise KustomizeError(f"{folder}: this renderer does not support {sorted(unknown)}")
    objects: list[dict[str, Any]] = []
    for entry in kustomization.get("resources", []):
        target = (folder / entry).resolve()
        if target.is_dir():
            objects += render(target)
        elif target.is_file():
            objects += load_documents(target)
        else:
            raise KustomizeError(f"{folder}: resource {entry!r} does not exist")
    _check_unique(objects, folder)
    for image in kustomization.get("images", []):
        _apply_image(objects, image)
    for patch in kustomization.get("patches", []):
        _apply_patch(objects, patch, folder)
    return objects


def _kustomization(folder: Path) -> dict[str, Any]:
    for name in KUSTOMIZATION_FILES:
        path = folder / name
        if path.is_file():
            data = yaml.safe_load(path.read_text()) or {}
            if data.get("kind", "Kustomization") != "Kustomization":
                raise KustomizeError(f"{path} is not a Kustomization")
            return data
    raise KustomizeError(f"{folder} has no kustomization.yaml")


def object_id(obj: dict[str, Any]) -> tuple[str, str, str, str]:
    meta = obj.get("metadata", {})
    return (obj.get("apiVersion", ""), obj.get("kind", ""), meta.get("namespace", ""), meta["name"])


def _check_unique(objects: list[dict[str, Any]], folder: Path) -> None:
    seen = set()
    for obj in objects:
        key = object_id(obj)
        if key in seen:
            raise KustomizeError(f"{folder}: {key} appears twice")
        seen.add(key)


def pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    kind = obj.get("kind")
    spec = obj.get("spec", {})
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        return spec["template"]["spec"]
    if kind == "CronJob":
        return spec["jobTemplate"]["spec"]["template"]["spec"]
    if kind == "Pod":
        return spec
    return None


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(obj)
    if spec is None:
        return []
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def split_image(image: str) -> tuple[str, str | None, str | None]:
    """(name, tag, digest) of an image reference."""
    name, digest = image, None
    if "@" in image:
        name, digest = image.split("@", 1)
    tag = None
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = name.rsplit(":", 1)
    return name, tag, digest


def _apply_image(objects: list[dict[str, Any]], rule: dict[str, Any]) -> None:
    unknown = set(rule) - {"name", "newName", "newTag", "digest"}
    if unknown:
        raise KustomizeError(f"images: unsupported fields {sorted(unknown)}")
    for obj in objects:
        for container in containers(obj):
            name, tag, digest = split_image(container["image"])
            if name != rule["name"]:
                continue
            name = rule.get("newName", name)
            if "digest" in rule:
                container["image"] = f"{name}@{rule['digest']}"
            elif "newTag" in rule:
                container["image"] = f"{name}:{rule['newTag']}"
            else:
                container["image"] = (
                    name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
                )


def _apply_patch(objects: list[dict[str, Any]], patch: dict[str, Any], folder: Path) -> None:
    unknown = set(patch) - {"target", "patch"}
    if unknown or "patch" not in patch or "target" not in patch:
        raise KustomizeError(f"{folder}: only inline JSON 6902 patches with a target")
    target = patch["target"]
    operations = yaml.safe_load(patch["patch"])
    if not isinstance(operations, list):
        raise KustomizeError(f"{folder}: strategic-merge patches are not supported")
    matched = [obj for obj in objects if _matches(obj, target)]
    if not matched:
        raise KustomizeError(f"{folder}: patch target {target} matches nothing")
    for obj in matched:
        for operation in operations:
            _json_patch(obj, operation)


def _matches(obj: dict[str, Any], target: dict[str, Any]) -> bool:
    group, _, version = obj.get("apiVersion", "").rpartition("/")
    meta = obj.get("metadata", {})
    checks = {
        "kind": obj.get("kind"),
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "version": version,
        "group": group,
    }
    unknown = set(target) - set(checks)
    if unknown:
        raise KustomizeError(f"patch target: unsupported fields {sorted(unknown)}")
    return all(checks[key] == value for key, value in target.items())


def _json_patch(obj: dict[str, Any], operation: dict[str, Any]) -> None:
    op = operation["op"]
    parts = [p.replace("~1", "/").replace("~0", "~") for p in operation["path"].split("/")[1:]]
    parent: Any = obj
    for part in parts[:-1]:
        parent = parent[int(part)] if isinstance(parent, list) else parent[part]
    last = parts[-1]
    if op in ("add", "replace"):
        value = copy.deepcopy(operation["value"])
        if isinstance(parent, list):
            index = len(parent) if last == "-" else int(last)
            if op == "add":
                parent.insert(index, value)
            else:
                parent[index] = value
        else:
            if op == "replace" and last not in parent:
                raise KustomizeError(f"replace: {operation['path']} does not exist")
            parent[last] = value
    elif op == "remove":
        if isinstance(parent, list):
            del parent[int(last)]
        else:
            del parent[last]
    else:
        raise KustomizeError(f"JSON patch op {op!r} is not supported")
