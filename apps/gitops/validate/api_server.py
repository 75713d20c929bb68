"""What the API server checks beyond the schemas (``k8s_grammar``): label keys and
values and annotation keys and total size wherever object or pod metadata sits; resource
quantities in the real quantity grammar, not negative, whole numbers for extended
resources, requests within limits; ``oci://`` storage URIs as image references with a
registered digest."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from apps.gitops.k8s_grammar import (
    OCI_PREFIX,
    annotation_problems,
    label_value_problems,
    oci_reference,
    parse_quantity,
    qualified_name_problems,
)


def api_server_problems(doc: dict) -> list[str]:
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
