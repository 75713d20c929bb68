"""Runtime families: the runtimes that take the same configuration and render alike."""

from __future__ import annotations

from apps.gitops.runtimes import Runtime

DEPLOYMENT_RUNTIMES = frozenset({Runtime.CUSTOM, Runtime.FASTAPI, Runtime.BENTOML})
KSERVE_RUNTIMES = frozenset(
    {
        Runtime.KSERVE_SKLEARN,
        Runtime.KSERVE_XGBOOST,
        Runtime.KSERVE_ONNX,
        Runtime.KSERVE_PYTORCH,
        Runtime.KSERVE_TRITON,
        Runtime.KSERVE_MLFLOW,
    }
)
MODEL_SERVER_RUNTIMES = KSERVE_RUNTIMES | {Runtime.SELDON}
IMAGE_RUNTIMES = DEPLOYMENT_RUNTIMES | {Runtime.BATCH, Runtime.STREAMING}
HTTP_RUNTIMES = DEPLOYMENT_RUNTIMES | {Runtime.STREAMING}  # get ports and probes
ALL_RUNTIMES = frozenset(Runtime)
