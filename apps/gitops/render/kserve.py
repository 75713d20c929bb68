"""KServe ``InferenceService`` (serving.kserve.io/v1beta1) for the built-in model formats.

KServe picks the serving runtime image itself (from its ClusterServingRuntimes), so no
image is rendered here; TorchServe and Triton are named explicitly because several
runtimes can claim their formats.
"""

from __future__ import annotations

from apps.gitops.config import ServingConfig
from apps.gitops.render import common
from apps.gitops.render.common import RenderRequest
from apps.gitops.runtimes import Runtime

# runtime -> (modelFormat.name, runtime name or "", protocolVersion or "")
FORMATS: dict[Runtime, tuple[str, str, str]] = {
    Runtime.KSERVE_SKLEARN: ("sklearn", "", ""),
    Runtime.KSERVE_XGBOOST: ("xgboost", "", ""),
    Runtime.KSERVE_ONNX: ("onnx", "", ""),
    Runtime.KSERVE_PYTORCH: ("pytorch", "kserve-torchserve", ""),
    Runtime.KSERVE_TRITON: ("triton", "kserve-tritonserver", "v2"),
}
COMPONENT = "predictor"


def inference_service(request: RenderRequest, config: ServingConfig, storage_uri: str) -> dict:
    format_name, runtime_name, protocol = FORMATS[request.runtime]
    model: dict = {
        "modelFormat": {"name": format_name},
        "storageUri": storage_uri,
        "resources": common.resources(config),
        "env": common.container_env(request, config, storage_uri),
    }
    if runtime_name:
        model["runtime"] = runtime_name
    if protocol:
        model["protocolVersion"] = protocol
    if config.secret_refs:
        model["envFrom"] = common.env_from(config)
    predictor: dict = {
        "minReplicas": config.min_replicas,
        "maxReplicas": config.max_replicas,
        "scaleMetric": "cpu",
        "scaleTarget": config.target_cpu_utilization,
        # Pods get the release labels too, so cost and metrics can be split by release.
        "labels": common.labels(request, COMPONENT),
        "model": model,
    }
    if config.canary_percent is not None:
        # KServe sends this share to the new revision and the rest to the last good one.
        predictor["canaryTrafficPercent"] = config.canary_percent
    if config.service_account:
        predictor["serviceAccountName"] = config.service_account
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": common.metadata(request, request.service, COMPONENT, storage_uri),
        "spec": {"predictor": predictor},
    }


def render(request: RenderRequest, config: ServingConfig, storage_uri: str) -> dict[str, dict]:
    return {"inferenceservice.yaml": inference_service(request, config, storage_uri)}
