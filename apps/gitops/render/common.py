"""Pieces every renderer shares: labels, metadata, containers, YAML and digests.

YAML always comes from ``yaml.safe_dump`` of plain dicts with sorted keys, never from
string templates: a value such as ``"x\\n---\\nkind: Secret"`` can then only ever be
one quoted scalar, and the same input gives byte-identical files.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from apps.gitops.config import ServingConfig
from apps.gitops.conventions import (
    ANNOTATION_MODEL_NAME,
    ANNOTATION_MODEL_URI,
    ANNOTATION_RUNTIME,
    LABEL_COMPONENT,
    LABEL_INSTANCE,
    LABEL_MANAGED_BY,
    LABEL_MODEL_VERSION,
    LABEL_NAME,
    LABEL_PART_OF,
    LABEL_RELEASE_ID,
    LABEL_VERSION,
    METADATA_FILE,
)
from apps.gitops.errors import RenderError
from apps.gitops.runtimes import DEFAULT_KSERVE_VERSION, KServeMode, Runtime


@dataclass(frozen=True)
class RenderRequest:
    """Everything needed to render one release; plain values only."""

    service: str
    environment: str
    runtime: Runtime
    release_id: str  # a UUID string; goes into labels, annotations and the commit trailer
    model_name: str
    model_version: int
    model_uri: str
    config: Mapping[str, Any]  # resolved raw config; render parses and validates it
    require_image_digest: bool = False  # production: images must be pinned @sha256:
    namespace: str | None = None  # default: the environment name
    # The control plane's own secrets: if one of them shows up in a render, refuse it.
    forbidden_values: frozenset[str] = field(default=frozenset(), repr=False)
    # How the target environment's KServe runs predictors; it decides what an
    # InferenceService may ask for (scale metric, scale to zero, canary).
    kserve_mode: KServeMode = KServeMode.KNATIVE
    kserve_version: str = DEFAULT_KSERVE_VERSION

    @property
    def target_namespace(self) -> str:
        return self.namespace or self.environment

    @property
    def instance(self) -> str:
        """The Argo CD Application name too: ``<service>-<environment>``."""
        return f"{self.service}-{self.environment}"


@dataclass(frozen=True)
class RenderedManifests:
    files: dict[str, str]  # bare file name -> YAML text, kustomization.yaml included
    digest: str  # manifests_digest(files)


def labels(request: RenderRequest, component: str) -> dict[str, str]:
    """The labels on every object and pod template (and so on every pod).

    The release id and model version on pods let cost and metrics be attributed to a
    release; they are deliberately not in any selector, which must stay immutable.
    """
    return {
        LABEL_NAME: request.service,
        LABEL_INSTANCE: request.instance,
        LABEL_VERSION: str(request.model_version),
        LABEL_COMPONENT: component,
        LABEL_PART_OF: "slipway",
        LABEL_MANAGED_BY: "slipway",
        LABEL_RELEASE_ID: request.release_id,
        LABEL_MODEL_VERSION: str(request.model_version),
    }


def selector(request: RenderRequest) -> dict[str, str]:
    """Stable across releases: Deployment selectors cannot change after creation."""
    return {LABEL_NAME: request.service, LABEL_INSTANCE: request.instance}


def annotations(request: RenderRequest, model_uri: str) -> dict[str, str]:
    # Annotations take any text: the registry's model name may not fit a label value.
    return {
        ANNOTATION_MODEL_NAME: request.model_name,
        ANNOTATION_MODEL_URI: model_uri,
        ANNOTATION_RUNTIME: request.runtime.value,
    }


def metadata(request: RenderRequest, name: str, component: str, model_uri: str) -> dict:
    return {
        "name": name,
        "namespace": request.target_namespace,
        "labels": labels(request, component),
        "annotations": annotations(request, model_uri),
    }


def container_env(
    request: RenderRequest,
    config: ServingConfig,
    model_uri: str,
    extra: Mapping[str, str] | None = None,
) -> list[dict[str, str]]:
    """Slipway's own variables first, then the extra ones, then the config's plain env."""
    env = [
        {"name": "MODEL_NAME", "value": request.model_name},
        {"name": "MODEL_VERSION", "value": str(request.model_version)},
        {"name": "MODEL_URI", "value": model_uri},
        {"name": "SLIPWAY_ENVIRONMENT", "value": request.environment},
        {"name": "SLIPWAY_RELEASE_ID", "value": request.release_id},
    ]
    env += [{"name": k, "value": v} for k, v in sorted((extra or {}).items())]
    taken = {item["name"] for item in env}
    clashes = sorted(name for name, _ in config.env if name in taken)
    if clashes:
        raise RenderError(
            f"env sets {', '.join(clashes)}, which Slipway sets itself for this runtime; "
            "remove them from the configuration."
        )
    env += [{"name": k, "value": v} for k, v in config.env]
    return env


def env_from(config: ServingConfig) -> list[dict]:
    return [{"secretRef": {"name": name}} for name in config.secret_refs]


def resources(config: ServingConfig) -> dict[str, dict[str, str]]:
    return {"requests": config.resources.requests(), "limits": config.resources.limits()}


def container_security_context() -> dict:
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_spec_basics(config: ServingConfig) -> dict:
    spec: dict[str, Any] = {
        # Model servers rarely need the Kubernetes API; mount a token only when a service
        # account was asked for (e.g. for cloud storage access through workload identity).
        "automountServiceAccountToken": bool(config.service_account),
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
    }
    if config.service_account:
        spec["serviceAccountName"] = config.service_account
    return spec


def probes(config: ServingConfig) -> dict:
    """Readiness, liveness and a startup probe that gives model loading its time."""
    if config.probes is None or config.probes.type == "none":
        return {}
    if config.probes.type == "exec":
        return exec_probes(config)
    return http_probes(config)


def exec_probes(config: ServingConfig) -> dict:
    """The same three probes, each running the configured command in the container."""
    probes = config.probes
    assert probes is not None and probes.command
    period = 10
    action = {"exec": {"command": list(probes.command)}}
    return {
        "readinessProbe": {
            **action,
            "initialDelaySeconds": probes.initial_delay_seconds,
            "periodSeconds": period,
            "timeoutSeconds": 5,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            **action,
            "periodSeconds": period,
            "timeoutSeconds": 5,
            "failureThreshold": 3,
        },
        "startupProbe": {
            **action,
            "initialDelaySeconds": probes.initial_delay_seconds,
            "periodSeconds": period,
            "timeoutSeconds": 5,
            "failureThreshold": max(1, -(-probes.startup_timeout_seconds // period)),
        },
    }


def http_probes(config: ServingConfig) -> dict:
    """HTTP GETs on the container's named ``http`` port."""
    probes = config.probes
    if probes is None:
        return {}
    period = 10
    return {
        "readinessProbe": {
            "httpGet": {"path": probes.readiness_path, "port": "http"},
            "initialDelaySeconds": probes.initial_delay_seconds,
            "periodSeconds": period,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": probes.liveness_path, "port": "http"},
            "periodSeconds": period,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
        # Liveness only starts once this succeeds, so a slow model load is not a crash loop.
        "startupProbe": {
            "httpGet": {"path": probes.liveness_path, "port": "http"},
            "initialDelaySeconds": probes.initial_delay_seconds,
            "periodSeconds": period,
            "failureThreshold": max(1, -(-probes.startup_timeout_seconds // period)),
        },
    }


def dump(obj: Mapping[str, Any]) -> str:
    """Deterministic YAML for one object."""
    return yaml.safe_dump(
        obj, sort_keys=True, default_flow_style=False, allow_unicode=False, width=4096
    )


def kustomization(resource_files: list[str]) -> dict:
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": sorted(resource_files),
    }


def manifests_digest(files: Mapping[str, str]) -> str:
    """sha256 over (sorted file name, text) of the manifests, length-prefixed.

    The release metadata file is left out on purpose, so the digest of a folder read
    back from the repository equals the digest reviewers approved.
    """
    digest = hashlib.sha256()
    for name in sorted(files):
        if name == METADATA_FILE:
            continue
        data = files[name].encode("utf-8")
        digest.update(f"{name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def release_metadata_file(
    *,
    release_id: str,
    kind: str,
    model_name: str,
    model_version: int,
    requested_by: str,
    approvers: list[str],
    reason: str = "",
    rollback_of: str | None = None,
    team: str = "",
) -> tuple[str, str]:
    """The small record written next to the manifests: who asked, who approved, why, and
    the owning team. The ApplicationSet's file generator reads ``team`` from it to put the
    Application in the team's AppProject (``apps.gitops.projects``)."""
    record = {
        "release_id": release_id,
        "kind": kind,
        "model_name": model_name,
        "model_version": model_version,
        "requested_by": requested_by,
        "approvers": sorted(approvers),
        "reason": reason,
        "rollback_of": rollback_of,
    }
    if team:
        record["team"] = team
    return METADATA_FILE, json.dumps(record, indent=2, sort_keys=True, ensure_ascii=True) + "\n"
