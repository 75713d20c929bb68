"""Shared builders for the GitOps adapter tests."""

from __future__ import annotations

import uuid

import pytest

from apps.gitops.render import RenderRequest
from apps.gitops.runtimes import Runtime

IMAGE = "registry.example.com/ml/churn:1.4.2"
PINNED = IMAGE + "@sha256:" + "a" * 64

# A minimal valid configuration for every runtime.
CONFIGS = {
    Runtime.CUSTOM: {"image": IMAGE},
    Runtime.FASTAPI: {"image": IMAGE},
    Runtime.BENTOML: {"image": IMAGE},
    Runtime.KSERVE_SKLEARN: {},
    Runtime.KSERVE_XGBOOST: {},
    Runtime.KSERVE_ONNX: {},
    Runtime.KSERVE_PYTORCH: {},
    Runtime.KSERVE_TRITON: {"resources": {"gpu": 1}},
    Runtime.KSERVE_MLFLOW: {},
    Runtime.SELDON: {},
    Runtime.BATCH: {"image": IMAGE, "schedule": "0 3 * * *"},
    Runtime.STREAMING: {
        "image": IMAGE,
        "kafka": {
            "bootstrap_servers": "kafka-0.kafka:9092",
            "topic": "events",
            "consumer_group": "churn-scorer",
        },
    },
}
RELEASE_ID = "6f1c2a57-3a44-4c1e-9f0e-1c2b3d4e5f60"


def make_request(
    runtime: Runtime = Runtime.CUSTOM, config: dict | None = None, **overrides
) -> RenderRequest:
    values = {
        "service": "churn",
        "environment": "staging",
        "runtime": runtime,
        "release_id": RELEASE_ID,
        "model_name": "churn-classifier",
        "model_version": 4,
        "model_uri": "s3://models/churn-classifier/4",
        "config": CONFIGS[runtime] if config is None else config,
    }
    values.update(overrides)
    return RenderRequest(**values)


@pytest.fixture
def release_id() -> str:
    return str(uuid.uuid4())
