"""Seldon Core v2 ``Model`` (mlops.seldon.io/v1alpha1).

Seldon schedules the model onto a shared Server that has the listed ``requirements``
(capabilities); the default ``mlflow`` suits models from the MLflow registry. The agent
fetches ``storageUri`` with rclone: the URI's prefix is an rclone remote name, configured
by a preloaded storage Secret or by the one named in ``secretName``.
"""

from __future__ import annotations

from apps.gitops.config import ServingConfig
from apps.gitops.render import common
from apps.gitops.render.common import RenderRequest

COMPONENT = "model"


def model(request: RenderRequest, config: ServingConfig, storage_uri: str) -> dict:
    spec: dict = {
        "storageUri": storage_uri,
        "requirements": list(config.requirements),
        # Seldon uses the memory figure to place models on servers with room for them.
        "memory": config.resources.memory,
        "replicas": max(config.min_replicas, 1),
        "minReplicas": config.min_replicas,
        "maxReplicas": config.max_replicas,
    }
    if config.server:
        spec["server"] = config.server
    if config.storage_secret:
        # Seldon's agent loads this Secret's rclone remote; its name must be the remote
        # named in storageUri ("minio:models/churn" needs a remote called "minio").
        spec["secretName"] = config.storage_secret
    return {
        "apiVersion": "mlops.seldon.io/v1alpha1",
        "kind": "Model",
        "metadata": common.metadata(request, request.service, COMPONENT, storage_uri),
        "spec": spec,
    }


def render(request: RenderRequest, config: ServingConfig, storage_uri: str) -> dict[str, dict]:
    return {"model.yaml": model(request, config, storage_uri)}
