"""Schemas: core kinds against the Kubernetes OpenAPI schemas (kubernetes-validate,
strict: an unknown field is an error), custom resources and the kustomization against
the small JSON schemas in ``apps/gitops/schemas/``."""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from typing import Any

import jsonschema
from referencing import Registry, Resource

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


def core_problems(name: str, doc: dict) -> list[str]:
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


def schema_problems(name: str, doc: Any, schema_file: str) -> list[str]:
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
