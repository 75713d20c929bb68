"""The entry point: every file of a render checked, every problem listed in one
``ManifestError`` (parsing, the kind and its schema, labels, image digests, the
kustomization's list), with the API-server and secret checks of the sibling modules."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

import yaml

from apps.gitops.conventions import KUSTOMIZATION_FILE, METADATA_FILE, REQUIRED_LABELS
from apps.gitops.errors import ManifestError, UnsafePathError
from apps.gitops.paths import check_file_name
from apps.gitops.validate.api_server import api_server_problems
from apps.gitops.validate.schemas import CORE_KINDS, CUSTOM_SCHEMAS, core_problems, schema_problems
from apps.gitops.validate.secrets import forbidden_needles, scan

_MAX_FILE_BYTES = 1024 * 1024
# libyaml's parser when present (10x faster), same safe semantics. Dumping stays on the
# pure-Python dumper (render.common) so every worker writes byte-identical files.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DIGEST = re.compile(r"@sha256:[a-f0-9]{64}\Z")


def validate_manifests(
    files: Mapping[str, str],
    *,
    require_image_digest: bool,
    forbidden_values: frozenset[str] | set[str] = frozenset(),
) -> None:
    """Raise ``ManifestError`` listing every problem in ``files``; return None if clean."""
    problems: list[str] = []
    forbidden = forbidden_needles(forbidden_values)
    object_files: list[str] = []
    kustomization: Any = None
    for name in sorted(files):
        text = files[name]
        try:
            check_file_name(name)
        except UnsafePathError as exc:
            problems.append(str(exc))
            continue
        if not isinstance(text, str):
            problems.append(f"{name}: the content must be text.")
            continue
        if len(text.encode("utf-8")) > _MAX_FILE_BYTES:
            problems.append(f"{name}: larger than {_MAX_FILE_BYTES} bytes.")
            continue
        if name == METADATA_FILE:
            problems += scan(name, text, _load_json(name, text, problems), forbidden)
            continue
        if not name.endswith(".yaml"):
            problems.append(f"{name}: only .yaml manifests and {METADATA_FILE} may be written.")
            continue
        documents = _load_yaml(name, text, problems)
        problems += scan(name, text, documents, forbidden)
        if documents is None:
            continue
        doc = documents[0]
        if name == KUSTOMIZATION_FILE:
            kustomization = doc
            problems += schema_problems(name, doc, "kustomization.json")
            continue
        object_files.append(name)
        problems += _check_object(name, doc, require_image_digest)
    problems += _check_kustomization(
        kustomization, object_files, present=KUSTOMIZATION_FILE in files
    )
    if problems:
        raise ManifestError(problems)


# --- parsing ---------------------------------------------------------------------------
def _load_yaml(name: str, text: str, problems: list[str]) -> list[Any] | None:
    try:
        documents = [d for d in yaml.load_all(text, Loader=_Loader) if d is not None]
    except yaml.YAMLError as exc:
        problems.append(f"{name}: not valid YAML ({_first_line(str(exc))}).")
        return None
    if len(documents) != 1:
        problems.append(f"{name}: must hold exactly one YAML document, found {len(documents)}.")
        return None
    if not isinstance(documents[0], dict):
        problems.append(f"{name}: the document must be a mapping.")
        return None
    return documents


def _load_json(name: str, text: str, problems: list[str]) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        problems.append(f"{name}: not valid JSON.")
        return None


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


# --- object checks ---------------------------------------------------------------------
def _check_object(name: str, doc: dict, require_image_digest: bool) -> list[str]:
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        return [f"{name}: apiVersion and kind are required."]
    if kind == "Secret":
        return [
            f"{name}: kind: Secret is never committed to the GitOps repository. Create the "
            "Secret in the cluster and reference it by name (secret_refs)."
        ]
    problems: list[str] = []
    if (api_version, kind) in CORE_KINDS:
        problems += core_problems(name, doc)
    elif (api_version, kind) in CUSTOM_SCHEMAS:
        problems += schema_problems(name, doc, CUSTOM_SCHEMAS[api_version, kind])
    else:
        return [f"{name}: {api_version} {kind} is not a kind Slipway renders."]
    problems += [f"{name}: {kind} {p}" for p in api_server_problems(doc)]
    labels = (doc.get("metadata") or {}).get("labels") or {}
    missing = [label for label in REQUIRED_LABELS if not labels.get(label)]
    if missing:
        problems.append(f"{name}: {kind} lacks the labels {', '.join(missing)}.")
    if require_image_digest:
        for path, image in _images(doc):
            if not isinstance(image, str) or not _DIGEST.search(image):
                problems.append(
                    f"{name}: {path} uses {image!r}, which is not pinned by digest; this "
                    "environment requires 'image@sha256:<digest>'."
                )
    return problems


def _check_kustomization(doc: Any, object_files: list[str], *, present: bool) -> list[str]:
    if not present:
        return [f"{KUSTOMIZATION_FILE} is missing; it must list the object files."]
    if not isinstance(doc, dict) or not isinstance(doc.get("resources"), list):
        return []  # the schema check already said what is wrong
    listed = set(doc["resources"])
    problems = []
    unlisted = sorted(set(object_files) - listed)
    if unlisted:
        problems.append(f"{KUSTOMIZATION_FILE}: does not list {', '.join(unlisted)}.")
    missing = sorted(listed - set(object_files))
    if missing:
        problems.append(f"{KUSTOMIZATION_FILE}: lists {', '.join(missing)}, which is not here.")
    return problems


def _images(doc: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every container image in ``doc``, wherever a pod spec sits."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            here = f"{path}.{key}" if path else str(key)
            if key in ("containers", "initContainers", "ephemeralContainers") and isinstance(
                value, list
            ):
                for index, container in enumerate(value):
                    if isinstance(container, dict) and "image" in container:
                        yield f"{here}[{index}].image", container["image"]
            else:
                yield from _images(value, here)
    elif isinstance(doc, list):
        for index, item in enumerate(doc):
            yield from _images(item, f"{path}[{index}]")
