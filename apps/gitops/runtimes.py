"""The serving runtimes Slipway renders manifests for.

What each renders into ``environments/<env>/<service>/`` (plus ``kustomization.yaml``):

- custom, fastapi, bentoml: ``deployment.yaml``, ``service.yaml``, ``hpa.yaml``, ``pdb.yaml``
  (BentoML defaults: port 3000, probes ``/readyz`` and ``/livez``);
- kserve-*: ``inferenceservice.yaml`` (serving.kserve.io/v1beta1; ``canary_percent`` becomes
  ``canaryTrafficPercent``);
- seldon: ``model.yaml`` (Seldon Core v2, mlops.seldon.io/v1alpha1);
- batch: ``cronjob.yaml``;
- streaming: ``deployment.yaml``, ``pdb.yaml``, ``scaledobject.yaml`` (KEDA, Kafka lag).

The configuration each accepts is described in ``apps.gitops.config``.
"""

from enum import StrEnum


class Runtime(StrEnum):
    CUSTOM = "custom"  # any HTTP model server image: Deployment + Service + HPA + PDB
    FASTAPI = "fastapi"  # a FastAPI image; same objects as custom
    BENTOML = "bentoml"  # a BentoML image; same objects, BentoML's probe paths and port
    KSERVE_SKLEARN = "kserve-sklearn"
    KSERVE_XGBOOST = "kserve-xgboost"
    KSERVE_ONNX = "kserve-onnx"
    KSERVE_PYTORCH = "kserve-pytorch"  # TorchServe
    KSERVE_TRITON = "kserve-triton"
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
    Runtime.SELDON: "Seldon Core v2",
    Runtime.BATCH: "Batch scoring (CronJob)",
    Runtime.STREAMING: "Streaming consumer (KEDA on Kafka lag)",
}
RUNTIME_CHOICES = [(runtime.value, runtime.label) for runtime in Runtime]
