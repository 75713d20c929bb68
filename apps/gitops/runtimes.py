"""The serving runtimes Slipway renders manifests for.

What each renders into ``environments/<env>/<service>/`` (plus ``kustomization.yaml``):

- custom, fastapi, bentoml: ``deployment.yaml``, ``service.yaml``, ``hpa.yaml``, ``pdb.yaml``
  (BentoML defaults: port 3000, probes ``/readyz`` and ``/livez``);
- kserve-*: ``inferenceservice.yaml`` (serving.kserve.io/v1beta1), shaped by the
  environment's KServe deployment mode (``KServeMode``): see docs/cluster-support.md;
- seldon: ``model.yaml`` (Seldon Core v2, mlops.seldon.io/v1alpha1);
- batch: ``cronjob.yaml``;
- streaming: ``deployment.yaml``, ``pdb.yaml``, ``scaledobject.yaml`` (KEDA, Kafka lag).

The configuration each accepts is described in ``apps.gitops.config``.
"""

from enum import StrEnum
from typing import NamedTuple


class Runtime(StrEnum):
    CUSTOM = "custom"  # any HTTP model server image: Deployment + Service + HPA + PDB
    FASTAPI = "fastapi"  # a FastAPI image; same objects as custom
    BENTOML = "bentoml"  # a BentoML image; same objects, BentoML's probe paths and port
    KSERVE_SKLEARN = "kserve-sklearn"
    KSERVE_XGBOOST = "kserve-xgboost"
    KSERVE_ONNX = "kserve-onnx"
    KSERVE_PYTORCH = "kserve-pytorch"  # TorchServe
    KSERVE_TRITON = "kserve-triton"
    KSERVE_MLFLOW = "kserve-mlflow"  # an MLflow model as logged, served by MLServer (v2)
    SELDON = "seldon"  # Seldon Core v2 Model
    BATCH = "batch"  # scheduled scoring, a CronJob
    STREAMING = "streaming"  # a Kafka consumer Deployment scaled by KEDA on lag

    @property
    def label(self) -> str:
        return RUNTIME_LABELS[self]


RUNTIME_LABELS = {
    Runtime.CUSTOM: "Custom image (Deployment)",
    Runtime.FASTAPI: "FastAPI image (Deployment)",
    Runtime.BENTOML: "BentoML image (Deployment)",
    Runtime.KSERVE_SKLEARN: "KServe scikit-learn",
    Runtime.KSERVE_XGBOOST: "KServe XGBoost",
    Runtime.KSERVE_ONNX: "KServe ONNX",
    Runtime.KSERVE_PYTORCH: "KServe PyTorch (TorchServe)",
    Runtime.KSERVE_TRITON: "KServe Triton",
    Runtime.KSERVE_MLFLOW: "KServe MLflow model (MLServer)",
    Runtime.SELDON: "Seldon Core v2",
    Runtime.BATCH: "Batch scoring (CronJob)",
    Runtime.STREAMING: "Streaming consumer (KEDA on Kafka lag)",
}
RUNTIME_CHOICES = [(runtime.value, runtime.label) for runtime in Runtime]


class KServeMode(StrEnum):
    """How an environment's KServe controller deploys predictors.

    The value is what Slipway writes in the ``serving.kserve.io/deploymentMode``
    annotation: KServe v0.20 names the modes ``Knative`` and ``Standard`` (the older
    ``Serverless`` / ``RawDeployment`` are still read but deprecated, and its admission
    webhook compares against ``Standard`` only).
    """

    KNATIVE = "knative"  # Knative Serving: KPA on concurrency/rps, scale to zero, canary
    STANDARD = "standard"  # plain Deployment + HPA: cpu/memory, min 1 replica, no canary

    @property
    def annotation_value(self) -> str:
        return {KServeMode.KNATIVE: "Knative", KServeMode.STANDARD: "Standard"}[self]


KSERVE_MODE_CHOICES = [
    (KServeMode.KNATIVE.value, "Knative (serverless)"),
    (KServeMode.STANDARD.value, "Standard (raw Deployment)"),
]
# The KServe releases whose behaviour the renderer and docs/cluster-support.md were checked
# against; an environment naming another one is refused rather than guessed at.
SUPPORTED_KSERVE_VERSIONS = ("0.20",)
DEFAULT_KSERVE_VERSION = "0.20"


class KServeRuntime(NamedTuple):
    """What a KServe runtime of Slipway's becomes in an InferenceService.

    ``serving_runtime`` is the ClusterServingRuntime of a default KServe v0.20 install
    that serves the format; ``protocols`` the protocol versions it declares, the first
    being the one Slipway states when the configuration names none.
    """

    model_format: str
    serving_runtime: str
    protocols: tuple[str, ...]


KSERVE_SERVING_RUNTIMES: dict[Runtime, KServeRuntime] = {
    Runtime.KSERVE_SKLEARN: KServeRuntime("sklearn", "kserve-sklearnserver", ("v1", "v2")),
    Runtime.KSERVE_XGBOOST: KServeRuntime("xgboost", "kserve-xgbserver", ("v1", "v2")),
    # Triton is the only ONNX runtime of a default install and speaks v2 only: an ONNX
    # model without a protocol is matched as v1 and finds no runtime at all.
    Runtime.KSERVE_ONNX: KServeRuntime("onnx", "kserve-tritonserver", ("v2", "grpc-v2")),
    Runtime.KSERVE_PYTORCH: KServeRuntime("pytorch", "kserve-torchserve", ("v1", "v2", "grpc-v2")),
    Runtime.KSERVE_TRITON: KServeRuntime("triton", "kserve-tritonserver", ("v2", "grpc-v2")),
    Runtime.KSERVE_MLFLOW: KServeRuntime("mlflow", "kserve-mlserver", ("v2",)),
}
