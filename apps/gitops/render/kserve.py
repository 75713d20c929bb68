"""KServe ``InferenceService`` (serving.kserve.io/v1beta1) for the built-in model formats.

KServe picks the serving runtime image itself (from its ClusterServingRuntimes); Slipway
names the runtime and the protocol explicitly, because several runtimes can claim a
format and a format without a protocol is matched as v1 (which Triton does not speak).

The environment's deployment mode decides what the predictor may ask for, as KServe
v0.20's admission webhook and reconcilers do (docs/cluster-support.md has the sources):

- Knative: Knative's autoscaler (KPA) on ``concurrency`` or ``rps``, scale to zero, and
  ``canaryTrafficPercent``; CPU/memory scaling only with the Knative HPA class, which
  cannot scale to zero.
- Standard: a Deployment scaled by an HPA on ``cpu`` or ``memory``; ``minReplicas`` 0 is
  raised to 1 and ``canaryTrafficPercent`` is ignored (the new version gets all traffic).

Asking a mode for something it does not do is a ``ConfigError`` naming the alternative,
never a manifest the controller rejects or silently reinterprets.
"""

from __future__ import annotations

from apps.gitops.config import ConfigError, ServingConfig
from apps.gitops.render import common
from apps.gitops.render.common import RenderRequest
from apps.gitops.runtimes import (
    KSERVE_SERVING_RUNTIMES,
    SUPPORTED_KSERVE_VERSIONS,
    KServeMode,
)

COMPONENT = "predictor"
ANNOTATION_DEPLOYMENT_MODE = "serving.kserve.io/deploymentMode"
ANNOTATION_AUTOSCALER_CLASS = "serving.kserve.io/autoscalerClass"  # Standard mode
ANNOTATION_KNATIVE_CLASS = "autoscaling.knative.dev/class"  # Knative mode
KNATIVE_HPA_CLASS = "hpa.autoscaling.knative.dev"
KNATIVE_METRICS = ("concurrency", "rps")
HPA_METRICS = ("cpu", "memory")


def check_mode(config: ServingConfig, mode: KServeMode, version: str) -> None:
    """Refuse what the environment's KServe deployment mode would reject or ignore."""
    if version not in SUPPORTED_KSERVE_VERSIONS:
        raise ConfigError(
            {
                "kserve_version": (
                    f"Slipway's KServe renders are checked against KServe "
                    f"{', '.join(SUPPORTED_KSERVE_VERSIONS)}, not {version!r}; set the "
                    "environment's KServe version to a supported one."
                )
            }
        )
    errors: dict[str, str] = {}
    name = mode.annotation_value
    metric = _metric(config, mode)
    if mode == KServeMode.KNATIVE:
        if config.autoscaler_class == "hpa":
            if metric not in HPA_METRICS:
                errors["scale_metric"] = (
                    f"With autoscaler_class hpa, KServe in {name} mode scales on cpu or "
                    f"memory, not {metric}; remove autoscaler_class to scale on {metric}."
                )
            if config.min_replicas == 0:
                errors["replicas.min"] = (
                    f"The HPA class cannot scale to zero in {name} mode; set replicas.min "
                    "to 1 or more, or remove autoscaler_class (Knative's KPA scales to zero "
                    "on concurrency or rps)."
                )
        elif metric not in KNATIVE_METRICS:
            errors["scale_metric"] = (
                f"KServe in {name} mode scales on concurrency or rps (Knative's KPA); "
                f"its webhook rejects {metric}{_cpu_hint(metric)}. Use scale_metric "
                "concurrency or rps, set "
                f"autoscaler_class: hpa to scale on {metric} (no scale to zero), or deploy "
                "to an environment in standard mode."
            )
    else:
        if config.autoscaler_class == "kpa":
            errors["autoscaler_class"] = (
                f"kpa is Knative's autoscaler; KServe in {name} mode scales with an HPA. "
                "Use autoscaler_class hpa (or leave it out), or deploy to an environment in "
                "knative mode."
            )
        if metric not in HPA_METRICS:
            errors["scale_metric"] = (
                f"KServe in {name} mode scales with an HPA on cpu or memory, not {metric}; "
                f"scaling on {metric} needs an environment in knative mode."
            )
        if config.min_replicas == 0:
            errors["replicas.min"] = (
                f"KServe in {name} mode raises minReplicas 0 to 1 (its HPA cannot scale "
                "to zero). Set replicas.min to 1 or more, or deploy to an environment in "
                "knative mode to scale to zero."
            )
        if config.canary_percent is not None:
            errors["canary_percent"] = (
                f"KServe in {name} mode ignores canaryTrafficPercent and would send all "
                "traffic to the new version at once. Remove canary_percent to roll out all "
                "at once, or deploy to an environment in knative mode for a canary."
            )
    if metric == "cpu" and config.scale_target is not None and config.scale_target > 100:
        errors["scale_target"] = "A cpu target is a utilisation percentage from 1 to 100."
    if metric == "memory" and config.scale_target is None:
        errors["scale_target"] = "Scaling on memory needs scale_target, in MiB per replica."
    if errors:
        raise ConfigError(errors)


def _metric(config: ServingConfig, mode: KServeMode) -> str:
    if config.scale_metric:
        return config.scale_metric
    if mode == KServeMode.STANDARD or config.autoscaler_class == "hpa":
        return "cpu"
    return "concurrency"


def _cpu_hint(metric: str) -> str:
    return " (target_cpu_utilization asks for cpu)" if metric == "cpu" else ""


def _target(config: ServingConfig, metric: str) -> int | None:
    if config.scale_target is not None:
        return config.scale_target
    if metric == "cpu":
        return config.target_cpu_utilization
    return None  # Knative's own default target for concurrency / rps


def inference_service(request: RenderRequest, config: ServingConfig, storage_uri: str) -> dict:
    mode = KServeMode(request.kserve_mode)
    check_mode(config, mode, request.kserve_version)
    served = KSERVE_SERVING_RUNTIMES[request.runtime]
    model: dict = {
        "modelFormat": {"name": served.model_format},
        "runtime": served.serving_runtime,
        "protocolVersion": config.protocol_version or served.protocols[0],
        "storageUri": storage_uri,
        "resources": common.resources(config),
        "env": common.container_env(request, config, storage_uri),
    }
    if config.secret_refs:
        model["envFrom"] = common.env_from(config)
    metric = _metric(config, mode)
    predictor: dict = {
        "minReplicas": config.min_replicas,
        "maxReplicas": config.max_replicas,
        "scaleMetric": metric,
        # Pods get the release labels too, so cost and metrics can be split by release.
        "labels": common.labels(request, COMPONENT),
        "model": model,
    }
    target = _target(config, metric)
    if target is not None:
        predictor["scaleTarget"] = target
    if config.canary_percent is not None:
        # Knative sends this share to the new revision and the rest to the last good one.
        predictor["canaryTrafficPercent"] = config.canary_percent
    if config.service_account:
        predictor["serviceAccountName"] = config.service_account
    metadata = common.metadata(request, request.service, COMPONENT, storage_uri)
    # Stated explicitly: a cluster's default mode is configuration that can change.
    metadata["annotations"][ANNOTATION_DEPLOYMENT_MODE] = mode.annotation_value
    if mode == KServeMode.STANDARD:
        metadata["annotations"][ANNOTATION_AUTOSCALER_CLASS] = "hpa"
    elif config.autoscaler_class == "hpa":
        metadata["annotations"][ANNOTATION_KNATIVE_CLASS] = KNATIVE_HPA_CLASS
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": metadata,
        "spec": {"predictor": predictor},
    }


def render(request: RenderRequest, config: ServingConfig, storage_uri: str) -> dict[str, dict]:
    return {"inferenceservice.yaml": inference_service(request, config, storage_uri)}
