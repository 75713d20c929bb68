"""Rendering: every runtime, deterministic output, labels, canary, digest pinning, and
configuration strings that try to smuggle YAML."""

from __future__ import annotations

import json

import pytest
import yaml

from apps.gitops.config import ConfigError
from apps.gitops.conventions import REQUIRED_LABELS
from apps.gitops.errors import ManifestError, RenderError, UnsafePathError
from apps.gitops.render import (
    METADATA_FILE,
    manifests_digest,
    release_metadata_file,
    render,
)
from apps.gitops.runtimes import Runtime
from tests.gitops.conftest import CONFIGS, IMAGE, PINNED, RELEASE_ID, make_request

EXPECTED_FILES = {
    Runtime.CUSTOM: {"deployment.yaml", "service.yaml", "hpa.yaml", "pdb.yaml"},
    Runtime.FASTAPI: {"deployment.yaml", "service.yaml", "hpa.yaml", "pdb.yaml"},
    Runtime.BENTOML: {"deployment.yaml", "service.yaml", "hpa.yaml", "pdb.yaml"},
    Runtime.KSERVE_SKLEARN: {"inferenceservice.yaml"},
    Runtime.KSERVE_XGBOOST: {"inferenceservice.yaml"},
    Runtime.KSERVE_ONNX: {"inferenceservice.yaml"},
    Runtime.KSERVE_PYTORCH: {"inferenceservice.yaml"},
    Runtime.KSERVE_TRITON: {"inferenceservice.yaml"},
    Runtime.SELDON: {"model.yaml"},
    Runtime.BATCH: {"cronjob.yaml"},
    Runtime.STREAMING: {"deployment.yaml", "pdb.yaml", "scaledobject.yaml"},
}
EXPECTED_KINDS = {
    "deployment.yaml": "Deployment",
    "service.yaml": "Service",
    "hpa.yaml": "HorizontalPodAutoscaler",
    "pdb.yaml": "PodDisruptionBudget",
    "inferenceservice.yaml": "InferenceService",
    "model.yaml": "Model",
    "cronjob.yaml": "CronJob",
    "scaledobject.yaml": "ScaledObject",
}


def load(text: str) -> dict:
    documents = list(yaml.safe_load_all(text))
    assert len(documents) == 1, "each file holds exactly one document"
    return documents[0]


def test_every_runtime_is_covered_by_these_tests():
    assert set(CONFIGS) == set(Runtime) == set(EXPECTED_FILES)


@pytest.mark.parametrize("runtime", list(Runtime))
def test_every_runtime_renders_valid_labelled_manifests(runtime):
    rendered = render(make_request(runtime))

    assert set(rendered.files) == EXPECTED_FILES[runtime] | {"kustomization.yaml"}
    kustomization = load(rendered.files["kustomization.yaml"])
    assert kustomization["resources"] == sorted(EXPECTED_FILES[runtime])
    for name in EXPECTED_FILES[runtime]:
        obj = load(rendered.files[name])
        assert obj["kind"] == EXPECTED_KINDS[name]
        assert obj["metadata"]["namespace"] == "staging"
        labels = obj["metadata"]["labels"]
        assert set(REQUIRED_LABELS) <= set(labels)
        assert labels["slipway.io/release-id"] == RELEASE_ID
        assert labels["slipway.io/model-version"] == "4"
        assert labels["app.kubernetes.io/instance"] == "churn-staging"
    assert rendered.digest == manifests_digest(rendered.files)


@pytest.mark.parametrize("runtime", list(Runtime))
def test_rendering_is_byte_for_byte_deterministic(runtime):
    first = render(make_request(runtime))
    # Same content, keys inserted in a different order.
    shuffled = dict(reversed(list(CONFIGS[runtime].items())))
    second = render(make_request(runtime, config=shuffled))
    assert first.files == second.files
    assert first.digest == second.digest


def test_digest_changes_with_any_byte():
    one = render(make_request(model_version=4))
    two = render(make_request(model_version=5))
    assert one.digest != two.digest
    files = dict(one.files)
    files["hpa.yaml"] += " "
    assert manifests_digest(files) != one.digest


def test_deployment_has_probes_resources_and_secret_refs_and_no_replicas():
    rendered = render(
        make_request(
            config={
                "image": IMAGE,
                "secret_refs": ["churn-db"],
                "resources": {"cpu": "500m", "memory": "1Gi", "limits": {"cpu": "2"}},
                "replicas": {"min": 2, "max": 6},
            }
        )
    )
    deployment = load(rendered.files["deployment.yaml"])
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["startupProbe"]["failureThreshold"] == 30
    assert container["resources"] == {
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"cpu": "2", "memory": "1Gi"},
    }
    assert container["envFrom"] == [{"secretRef": {"name": "churn-db"}}]
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env["MODEL_URI"] == "s3://models/churn-classifier/4"
    assert env["MODEL_VERSION"] == "4"
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pod_labels["slipway.io/release-id"] == RELEASE_ID
    assert deployment["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "churn",
        "app.kubernetes.io/instance": "churn-staging",
    }
    hpa = load(rendered.files["hpa.yaml"])
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    assert load(rendered.files["pdb.yaml"])["spec"]["maxUnavailable"] == 1


def test_selector_is_the_same_for_every_release():
    one = load(render(make_request(release_id=RELEASE_ID)).files["deployment.yaml"])
    two = load(
        render(
            make_request(release_id="0b0e8c3c-0d1f-4c1e-8a54-8d7f4ad6c001", model_version=9)
        ).files["deployment.yaml"]
    )
    assert one["spec"]["selector"] == two["spec"]["selector"]


def test_kserve_canary_percent_is_rendered_only_when_asked():
    with_canary = render(make_request(Runtime.KSERVE_SKLEARN, config={"canary_percent": 10}))
    predictor = load(with_canary.files["inferenceservice.yaml"])["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 10
    assert predictor["model"]["modelFormat"] == {"name": "sklearn"}
    assert predictor["model"]["storageUri"] == "s3://models/churn-classifier/4"

    without = render(make_request(Runtime.KSERVE_SKLEARN, config={}))
    assert (
        "canaryTrafficPercent"
        not in load(without.files["inferenceservice.yaml"])["spec"]["predictor"]
    )


@pytest.mark.parametrize(
    "runtime, format_name, runtime_name",
    [
        (Runtime.KSERVE_XGBOOST, "xgboost", None),
        (Runtime.KSERVE_ONNX, "onnx", None),
        (Runtime.KSERVE_PYTORCH, "pytorch", "kserve-torchserve"),
        (Runtime.KSERVE_TRITON, "triton", "kserve-tritonserver"),
    ],
)
def test_kserve_model_formats(runtime, format_name, runtime_name):
    model = load(render(make_request(runtime)).files["inferenceservice.yaml"])["spec"]["predictor"][
        "model"
    ]
    assert model["modelFormat"]["name"] == format_name
    assert model.get("runtime") == runtime_name


def test_triton_gpu_is_requested_and_limited():
    model = load(render(make_request(Runtime.KSERVE_TRITON)).files["inferenceservice.yaml"])[
        "spec"
    ]["predictor"]["model"]
    assert model["resources"]["requests"]["nvidia.com/gpu"] == "1"
    assert model["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_model_servers_need_a_uri_they_can_fetch():
    with pytest.raises(ConfigError) as caught:
        render(make_request(Runtime.SELDON, model_uri="runs:/0a1b/model"))
    assert "storage_uri" in caught.value.errors
    rendered = render(
        make_request(
            Runtime.SELDON,
            config={"storage_uri": "gs://bucket/churn/4"},
            model_uri="runs:/0a1b/model",
        )
    )
    assert load(rendered.files["model.yaml"])["spec"]["storageUri"] == "gs://bucket/churn/4"


def test_batch_cronjob_and_streaming_scaledobject():
    cronjob = load(render(make_request(Runtime.BATCH)).files["cronjob.yaml"])
    assert cronjob["spec"]["schedule"] == "0 3 * * *"
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]
    assert pod["metadata"]["labels"]["slipway.io/release-id"] == RELEASE_ID

    files = render(make_request(Runtime.STREAMING)).files
    scaled = load(files["scaledobject.yaml"])
    trigger = scaled["spec"]["triggers"][0]
    assert trigger["type"] == "kafka"
    assert trigger["metadata"] == {
        "bootstrapServers": "kafka-0.kafka:9092",
        "consumerGroup": "churn-scorer",
        "topic": "events",
        "lagThreshold": "100",
        "offsetResetPolicy": "latest",
    }
    assert scaled["spec"]["scaleTargetRef"]["name"] == "churn"
    env = {
        e["name"]: e["value"]
        for e in load(files["deployment.yaml"])["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["KAFKA_TOPIC"] == "events"


def test_production_requires_images_pinned_by_digest():
    with pytest.raises(ManifestError) as caught:
        render(make_request(environment="prod", require_image_digest=True))
    assert "pinned by digest" in str(caught.value)

    pinned = render(
        make_request(environment="prod", require_image_digest=True, config={"image": PINNED})
    )
    assert PINNED in pinned.files["deployment.yaml"]
    # Model-server runtimes have no image of ours to pin.
    render(make_request(Runtime.KSERVE_ONNX, environment="prod", require_image_digest=True))


def test_batch_image_pinning_is_checked_inside_the_job_template():
    with pytest.raises(ManifestError, match="jobTemplate"):
        render(make_request(Runtime.BATCH, require_image_digest=True))


@pytest.mark.parametrize("value", ["x\n---\nkind: Secret", "a\nb: c"])
def test_config_strings_that_start_a_new_document_or_key_are_refused(value):
    with pytest.raises(ConfigError):
        render(make_request(config={"image": IMAGE, "env": {"NOTE": value}}))


@pytest.mark.parametrize(
    "value", ["a: b", "--- !!python/object:os.system", "{x: 1}", "'; kind: Secret"]
)
def test_config_strings_that_look_like_yaml_stay_inert_quoted_scalars(value):
    rendered = render(make_request(config={"image": IMAGE, "env": {"NOTE": value}}))
    deployment = load(rendered.files["deployment.yaml"])
    env = {
        e["name"]: e["value"]
        for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["NOTE"] == value
    assert deployment["kind"] == "Deployment"


def test_model_name_from_the_registry_cannot_inject_yaml():
    # The registry's model name lands in an annotation; newlines there are refused, and
    # anything else is one quoted scalar.
    with pytest.raises(RenderError):
        render(make_request(model_name="churn\n---\nkind: Secret"))
    rendered = render(make_request(model_name="churn: {kind: Secret}"))
    deployment = load(rendered.files["deployment.yaml"])
    assert deployment["metadata"]["annotations"]["slipway.io/model-name"] == (
        "churn: {kind: Secret}"
    )


@pytest.mark.parametrize("service", ["../etc", "a/b", "nul\x00", "\u0441hurn", ".git", "Churn"])
def test_bad_service_names_are_refused_before_rendering(service):
    with pytest.raises(UnsafePathError):
        render(make_request(service=service))


def test_service_names_must_start_with_a_letter_for_kubernetes_objects():
    with pytest.raises(RenderError, match="start with a letter"):
        render(make_request(service="9lives"))


def test_metadata_file_is_outside_the_digest_and_the_kustomization():
    rendered = render(make_request())
    name, text = release_metadata_file(
        release_id=RELEASE_ID,
        kind="deploy",
        model_name="churn-classifier",
        model_version=4,
        requested_by="alice",
        approvers=["pat", "carol"],
        reason="better recall",
    )
    assert name == METADATA_FILE
    record = json.loads(text)
    assert record["approvers"] == ["carol", "pat"]
    assert record["rollback_of"] is None
    assert manifests_digest({**rendered.files, name: text}) == rendered.digest
    assert name not in load(rendered.files["kustomization.yaml"])["resources"]


def test_forbidden_values_block_the_render():
    secret = "control-plane-secret-value-123"
    with pytest.raises(ManifestError, match="control plane's own secrets"):
        render(
            make_request(
                config={"image": IMAGE, "env": {"NOTE": secret}},
                forbidden_values=frozenset({secret}),
            )
        )
    assert secret not in repr(make_request(forbidden_values=frozenset({secret})))
