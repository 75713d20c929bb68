"""Validate manifests before anyone approves or commits them.

Checks, all run so that one ``ManifestError`` lists every problem:

- each file is one YAML document of a kind Slipway renders; ``kind: Secret`` is refused
  (secrets are referenced by name, never committed);
- core kinds against the Kubernetes OpenAPI schemas (kubernetes-validate, strict: an
  unknown field is an error), custom resources against the small JSON schemas in
  ``apps/gitops/schemas/``, and the kustomization lists exactly the object files;
- every object carries the Slipway labels;
- what the API server checks beyond the schemas (``k8s_grammar``): label keys and
  values and annotation keys and total size wherever object or pod metadata sits;
  resource quantities in the real quantity grammar, not negative, whole numbers for
  extended resources, requests within limits; ``oci://`` storage URIs as image
  references with a registered digest;
- with ``require_image_digest``, every container image is pinned ``@sha256:``;
- a secret scanner over the raw text and every parsed string: PEM private keys, cloud
  and forge tokens, credentials in URLs, and any of ``forbidden_values`` (the control
  plane's own secrets), in clear or base64. Findings name the file and place, never the
  secret.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator, Mapping
from functools import cache
from importlib import resources
from typing import Any

import jsonschema
import yaml
from referencing import Registry, Resource

from apps.gitops.conventions import KUSTOMIZATION_FILE, METADATA_FILE, REQUIRED_LABELS
from apps.gitops.errors import ManifestError, UnsafePathError
from apps.gitops.k8s_grammar import (
    OCI_PREFIX,
    annotation_problems,
    label_value_problems,
    oci_reference,
    parse_quantity,
    qualified_name_problems,
)
from apps.gitops.paths import check_file_name

# The Kubernetes minor version whose schemas core kinds are checked against: the oldest
# version we support, so manifests valid here apply on every newer cluster too.
KUBERNETES_VERSION = "1.31"
CORE_KINDS = frozenset(
    {
        ("apps/v1", "Deployment"),
        ("v1", "Service"),
        ("autoscaling/v2", "HorizontalPodAutoscaler"),
        ("policy/v1", "PodDisruptionBudget"),
        ("batch/v1", "CronJob"),
    }
)
CUSTOM_SCHEMAS = {
    ("serving.kserve.io/v1beta1", "InferenceService"): "inferenceservice.json",
    ("mlops.seldon.io/v1alpha1", "Model"): "seldon-model.json",
    ("keda.sh/v1alpha1", "ScaledObject"): "keda-scaledobject.json",
    # Rollout steps (apps.gitops.traffic): Seldon's traffic split and Gateway API's.
    ("mlops.seldon.io/v1alpha1", "Experiment"): "experiment.json",
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): "httproute.json",
}
_SHARED_SCHEMAS = ("_metadata.json", "_container.json")
_MAX_FILE_BYTES = 1024 * 1024
# libyaml's parser when present (10x faster), same safe semantics. Dumping stays on the
# pure-Python dumper (render.common) so every worker writes byte-identical files.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DIGEST = re.compile(r"@sha256:[a-f0-9]{64}\Z")
# Shorter forbidden values would match ordinary words; the control plane's secrets are long.
MIN_FORBIDDEN_LENGTH = 8

SECRET_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("a PEM private key", re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")),
    ("an AWS access key id", re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|AIPA)[A-Z0-9]{16}\b")),
    (
        "an AWS secret access key",
        re.compile(r"(?i)aws_?secret_?access_?key\W{0,4}[A-Za-z0-9/+=]{40}\b"),
    ),
    (
        "a GitHub token",
        re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})"),
    ),
    ("a GitLab token", re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}")),
    ("a Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("a Google API key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b")),
    ("a Stripe secret key", re.compile(r"\b[sr]k_live_[0-9A-Za-z]{20,}")),
    ("an OpenAI-style API key", re.compile(r"\bsk-(?:proj-)?[A-Za-z0-9_-]{32,}")),
    (
        "a JSON web token",
        re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    ),
    # The scheme is bounded: unbounded, a long run of letters (a 256 KiB annotation) made
    # this quadratic, minutes per file. A longer scheme still matches on its last 32.
    (
        "a password in a URL",
        re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,31}://[^/\s:@]+:[^/\s@]+@"),
    ),
)


def validate_manifests(
    files: Mapping[str, str],
    *,
    require_image_digest: bool,
    forbidden_values: frozenset[str] | set[str] = frozenset(),
) -> None:
    """Raise ``ManifestError`` listing every problem in ``files``; return None if clean."""
    problems: list[str] = []
    forbidden = _forbidden_needles(forbidden_values)
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
            problems += _scan(name, text, _load_json(name, text, problems), forbidden)
            continue
        if not name.endswith(".yaml"):
            problems.append(f"{name}: only .yaml manifests and {METADATA_FILE} may be written.")
            continue
        documents = _load_yaml(name, text, problems)
        problems += _scan(name, text, documents, forbidden)
        if documents is None:
            continue
        doc = documents[0]
        if name == KUSTOMIZATION_FILE:
            kustomization = doc
            problems += _schema_problems(name, doc, "kustomization.json")
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
        problems += _core_problems(name, doc)
    elif (api_version, kind) in CUSTOM_SCHEMAS:
        problems += _schema_problems(name, doc, CUSTOM_SCHEMAS[api_version, kind])
    else:
        return [f"{name}: {api_version} {kind} is not a kind Slipway renders."]
    problems += [f"{name}: {kind} {p}" for p in _api_server_problems(doc)]
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


# --- what the API server checks beyond the schemas ------------------------------------------
def _api_server_problems(doc: dict) -> list[str]:
    """``<field path>: <problem>.`` for every label, annotation, quantity and OCI URI in
    ``doc`` that the API server (or, for a custom resource, the pod its controller
    creates from it) would refuse. Values of the wrong type are left to the schemas."""
    problems = []
    for path, label_map, annotation_map in _metadata_blocks(doc):
        if isinstance(label_map, dict):
            problems += _label_problems(f"{path}.labels", label_map)
        if isinstance(annotation_map, dict):
            problems += [f"{path}.annotations: {p}." for p in annotation_problems(annotation_map)]
    for path, selector in _selectors(doc):
        if isinstance(selector, dict):
            problems += _label_problems(path, selector)
    for path, block in _resource_blocks(doc):
        problems += _resources_problems(path, block)
    memory = _dict(doc.get("spec")).get("memory") if doc.get("kind") == "Model" else None
    if memory is not None:  # Seldon's model memory request
        problems += _quantity_problems("spec.memory", memory)
    for path, uri in _storage_uris(doc):
        if isinstance(uri, str) and uri.startswith(OCI_PREFIX):
            try:
                oci_reference(uri)
            except ValueError as exc:
                problems.append(f"{path}: {exc}.")
    return problems


def _dict(value: Any) -> dict:
    """``value`` if it is a mapping, else an empty one: a wrong type is the schema's to
    report, not a crash here."""
    return value if isinstance(value, dict) else {}


def _label_problems(path: str, labels: dict) -> list[str]:
    problems = []
    for key, value in labels.items():
        problems += [f"{path}: label key {key!r}: {p}." for p in qualified_name_problems(key)]
        if isinstance(value, str):
            problems += [f"{path}.{key}: label value: {p}." for p in label_value_problems(value)]
    return problems


def _metadata_blocks(doc: dict) -> Iterator[tuple[str, Any, Any]]:
    """(path, labels, annotations) of the object and of every pod it makes.

    Pod templates sit under ``spec.template`` (Deployment) and
    ``spec.jobTemplate[.spec.template]`` (CronJob); KServe copies a predictor's
    ``labels``/``annotations`` onto its pods. KEDA's ``triggers[].metadata`` is scaler
    settings, not object metadata, so only these known places are looked at.
    """
    spec = _dict(doc.get("spec"))
    places: list[tuple[str, Any]] = [("metadata", doc.get("metadata"))]
    template = spec.get("template")
    if isinstance(template, dict):
        places.append(("spec.template.metadata", template.get("metadata")))
    job = spec.get("jobTemplate")
    if isinstance(job, dict):
        places.append(("spec.jobTemplate.metadata", job.get("metadata")))
        job_template = _dict(job.get("spec")).get("template")
        if isinstance(job_template, dict):
            places.append(("spec.jobTemplate.spec.template.metadata", job_template.get("metadata")))
    if doc.get("kind") == "InferenceService" and isinstance(spec.get("predictor"), dict):
        places.append(("spec.predictor", spec["predictor"]))
    for path, meta in places:
        if isinstance(meta, dict):
            yield path, meta.get("labels"), meta.get("annotations")


def _selectors(doc: dict) -> Iterator[tuple[str, Any]]:
    """Label selectors: a Service's plain map, everyone else's ``matchLabels``."""
    spec = _dict(doc.get("spec"))
    selector = spec.get("selector")
    if doc.get("kind") == "Service":
        yield "spec.selector", selector
    elif isinstance(selector, dict):
        yield "spec.selector.matchLabels", selector.get("matchLabels")


def _resource_blocks(doc: Any, path: str = "") -> Iterator[tuple[str, dict]]:
    """Every container ``resources`` mapping (core pod specs and KServe's model)."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            here = f"{path}.{key}" if path else str(key)
            if key == "resources" and isinstance(value, dict):
                yield here, value
            else:
                yield from _resource_blocks(value, here)
    elif isinstance(doc, list):
        for index, item in enumerate(doc):
            yield from _resource_blocks(item, f"{path}[{index}]")


def _quantity(value: Any) -> tuple[Any, str | None]:
    """(the parsed amount or None, why not). A YAML number stands for its text, as the
    API server reads a JSON number in a quantity field."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None, None  # the schema reports the type
    text = value if isinstance(value, str) else repr(value)
    try:
        return parse_quantity(text), None
    except ValueError as exc:
        return None, str(exc)


def _quantity_problems(path: str, value: Any) -> list[str]:
    amount, why = _quantity(value)
    if why:
        return [f"{path}: {why}."]
    if amount is not None and amount < 0:
        return [f"{path}: {value!r} must be greater than or equal to 0."]
    return []


def _is_extended(resource: str) -> bool:
    # core/v1 helper IsExtendedResourceName: a prefixed name outside kubernetes.io.
    return "/" in resource and "kubernetes.io/" not in resource


def _resources_problems(path: str, resources: dict) -> list[str]:
    """Pod validation of one container's resources (``ValidateResourceRequirements``):
    valid, non-negative quantities; whole numbers for extended resources such as
    ``nvidia.com/gpu``, whose request must equal the limit; no request above its limit."""
    problems = []
    parsed: dict[str, dict[str, Any]] = {}
    for part in ("limits", "requests"):
        amounts = resources.get(part)
        if not isinstance(amounts, dict):
            continue
        parsed[part] = {}
        for resource, value in amounts.items():
            where = f"{path}.{part}.{resource}"
            found = _quantity_problems(where, value)
            problems += found
            amount, _ = _quantity(value)
            if found or amount is None:
                continue
            parsed[part][resource] = amount
            if _is_extended(str(resource)) and amount != amount.to_integral_value():
                problems.append(f"{where}: {value!r} must be an integer.")
    limits, requests = parsed.get("limits", {}), parsed.get("requests", {})
    for resource, request in requests.items():
        limit = limits.get(resource)
        where = f"{path}.requests.{resource}"
        if limit is not None and request > limit:
            problems.append(
                f"{where}: must be less than or equal to the {resource} limit "
                f"({resources['limits'][resource]!r})."
            )
        elif _is_extended(str(resource)) and limit is None:
            problems.append(f"{where}: a limit must be set for {resource}, too.")
        elif _is_extended(str(resource)) and limit != request:
            problems.append(f"{where}: must be equal to the {resource} limit.")
    return problems


def _storage_uris(doc: dict) -> Iterator[tuple[str, Any]]:
    spec = _dict(doc.get("spec"))
    if doc.get("kind") == "Model":
        yield "spec.storageUri", spec.get("storageUri")
    predictor = spec.get("predictor")
    if isinstance(predictor, dict) and isinstance(predictor.get("model"), dict):
        yield "spec.predictor.model.storageUri", predictor["model"].get("storageUri")


def _core_problems(name: str, doc: dict) -> list[str]:
    validator = _core_validator(doc["apiVersion"], doc["kind"])
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.path)))
    return [
        f"{name}: {doc['kind']} {'.'.join(str(p) for p in e.absolute_path) or '(top level)'}: "
        f"{e.message}"
        for e in errors
    ]


@cache
def _core_validator(api_version: str, kind: str) -> jsonschema.protocols.Validator:
    """kubernetes-validate's strict schema for one kind, built once per process.

    ``kubernetes_validate.validate`` re-reads its 1.3 MB definitions file on every call
    (~15 ms an object); this builds the same Draft 2020-12 validator from the same files
    once, and keeps using it.
    """
    from kubernetes_validate import utils

    version = [v for v in utils.all_versions() if utils.major_minor(v) == KUBERNETES_VERSION][-1]
    schema_dir = f"kubernetes-json-schema/v{version}-local-strict"
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    schema = utils.schema_contents(f"{schema_dir}/{kind.lower()}-{group_version}.json", version)
    definitions = utils.schema_contents(f"{schema_dir}/_definitions.json", version)
    registry = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


def _schema_problems(name: str, doc: Any, schema_file: str) -> list[str]:
    validator = _validator(schema_file)
    problems = []
    for error in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.path))):
        where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        problems.append(f"{name}: {where}: {error.message}")
    return problems


@cache
def _validator(schema_file: str) -> jsonschema.protocols.Validator:
    registry: Registry = Registry()
    for shared in _SHARED_SCHEMAS:
        contents = json.loads(_schema_text(shared))
        registry = registry.with_resource(contents["$id"], Resource.from_contents(contents))
    schema = json.loads(_schema_text(schema_file))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, registry=registry, format_checker=cls.FORMAT_CHECKER)


def _schema_text(file_name: str) -> str:
    return resources.files("apps.gitops").joinpath("schemas", file_name).read_text("utf-8")


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


# --- the secret scanner ----------------------------------------------------------------
def _forbidden_needles(values: frozenset[str] | set[str]) -> list[str]:
    """The forbidden values and their base64 forms (how a Secret or an HTTP Basic
    header would carry them).

    A value inside a longer base64 blob ("user:token") starts at any byte offset, and
    each offset modulo 3 gives a different character stream; so the needles are the
    characters that depend on the value alone at each of the three alignments, in both
    the standard and the URL-safe alphabet. (Before, only offset 0 was matched:
    base64("git:" + token) went through; found by tests/hardening/test_security_gates.py.)
    """
    needles: set[str] = set()
    for value in values:
        if not isinstance(value, str) or len(value) < MIN_FORBIDDEN_LENGTH:
            continue
        needles.add(value)
        raw = value.encode("utf-8")
        for shift, first_clean_char in ((0, 0), (1, 2), (2, 3)):
            encoded = base64.b64encode(b"\0" * shift + raw).decode("ascii")
            # Only whole 3-byte groups: the last group also depends on what follows.
            whole = (shift + len(raw)) // 3 * 4
            needle = encoded[first_clean_char:whole]
            if len(needle) >= MIN_FORBIDDEN_LENGTH:
                needles.add(needle)
                needles.add(needle.translate(_URLSAFE))
    return sorted(needles)


_URLSAFE = str.maketrans("+/", "-_")


def _findings(text: str, forbidden: list[str]) -> list[str]:
    found = [label for label, pattern in SECRET_PATTERNS if pattern.search(text)]
    if any(needle in text for needle in forbidden):
        found.append("one of the control plane's own secrets")
    return found


def secret_findings(
    text: str, forbidden_values: frozenset[str] | set[str] = frozenset()
) -> list[str]:
    """What secrets ``text`` seems to hold, as labels ("a GitHub token", "one of the
    control plane's own secrets"), never the secret itself. For text that is committed
    but is not a manifest: commit messages, reasons. A base64 blob wrapped over several
    lines is caught too."""
    forbidden = _forbidden_needles(forbidden_values)
    found = _findings(text, forbidden)
    compact = re.sub(r"\s+", "", text)
    for label in _findings(compact, forbidden):
        if label not in found:
            found.append(label)
    return found


def _scan(name: str, text: str, parsed: Any, forbidden: list[str]) -> list[str]:
    """Scan the raw lines (comments included: they would be committed too), then every
    parsed string (escapes such as ``\\x41`` are decoded there); report each kind of
    finding once per file, at its first place."""
    seen: set[str] = set()
    problems = []
    for number, line in enumerate(text.splitlines(), start=1):
        for label in _findings(line, forbidden):
            if label not in seen:
                seen.add(label)
                problems.append(f"{name}: line {number} contains what looks like {label}.")
    for path, value in _strings(parsed):
        for label in _findings(value, forbidden):
            if label not in seen:
                seen.add(label)
                problems.append(
                    f"{name}: {path or '(top level)'} contains what looks like {label}."
                )
    # A base64 blob wrapped over several lines (as in a PEM or a ConfigMap) hides a
    # needle from the line scan.
    compact = re.sub(r"\s+", "", text)
    if "one of the control plane's own secrets" not in seen and any(
        needle in compact for needle in forbidden
    ):
        problems.append(f"{name}: contains, across lines, one of the control plane's own secrets.")
    return problems


def _strings(doc: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(doc, str):
        yield path, doc
    elif isinstance(doc, dict):
        for key, value in doc.items():
            here = f"{path}.{key}" if path else str(key)
            if isinstance(key, str):
                yield here, key
            yield from _strings(value, here)
    elif isinstance(doc, list):
        for index, item in enumerate(doc):
            yield from _strings(item, f"{path}[{index}]")
