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
from apps.gitops.runtimes import KServeMode, Runtime
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
    Runtime.KSERVE_MLFLOW: {"inferenceservice.yaml"},
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


# Format, ClusterServingRuntime and protocol of a default KServe v0.20 install: ONNX
# used to render with no protocol, was matched as v1 and found no runtime (Triton is v2).
@pytest.mark.parametrize(
    "runtime, format_name, runtime_name, protocol",
    [
        (Runtime.KSERVE_SKLEARN, "sklearn", "kserve-sklearnserver", "v1"),
        (Runtime.KSERVE_XGBOOST, "xgboost", "kserve-xgbserver", "v1"),
        (Runtime.KSERVE_ONNX, "onnx", "kserve-tritonserver", "v2"),
        (Runtime.KSERVE_PYTORCH, "pytorch", "kserve-torchserve", "v1"),
        (Runtime.KSERVE_TRITON, "triton", "kserve-tritonserver", "v2"),
        (Runtime.KSERVE_MLFLOW, "mlflow", "kserve-mlserver", "v2"),
    ],
)
def test_kserve_model_formats(runtime, format_name, runtime_name, protocol):
    model = load(render(make_request(runtime)).files["inferenceservice.yaml"])["spec"]["predictor"][
        "model"
    ]
    assert model["modelFormat"]["name"] == format_name
    assert model["runtime"] == runtime_name
    assert model["protocolVersion"] == protocol


def test_kserve_protocol_can_be_chosen_among_the_runtimes_own():
    model = load(
        render(make_request(Runtime.KSERVE_SKLEARN, config={"protocol_version": "v2"})).files[
            "inferenceservice.yaml"
        ]
    )["spec"]["predictor"]["model"]
    assert model["protocolVersion"] == "v2"
    with pytest.raises(ConfigError) as caught:
        render(make_request(Runtime.KSERVE_ONNX, config={"protocol_version": "v1"}))
    assert "kserve-tritonserver speaks v2, grpc-v2" in caught.value.errors["protocol_version"]


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


# --- KServe deployment modes (issue #13) --------------------------------------------------
def isvc(config: dict, mode: KServeMode = KServeMode.KNATIVE, runtime=Runtime.KSERVE_SKLEARN):
    rendered = render(make_request(runtime, config=config, kserve_mode=mode))
    return load(rendered.files["inferenceservice.yaml"])


def mode_errors(config: dict, mode: KServeMode) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        render(make_request(Runtime.KSERVE_SKLEARN, config=config, kserve_mode=mode))
    return caught.value.errors


def test_knative_mode_is_stated_and_scales_on_concurrency_not_cpu():
    # The old render said "scaleMetric: cpu" with no mode: KServe's default (Knative)
    # webhook refused every InferenceService Slipway wrote.
    obj = isvc({})
    assert obj["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Knative"
    predictor = obj["spec"]["predictor"]
    assert predictor["scaleMetric"] == "concurrency"
    assert "scaleTarget" not in predictor  # Knative's own default target
    assert "autoscaling.knative.dev/class" not in obj["metadata"]["annotations"]


def test_knative_mode_scales_to_zero_and_splits_canary_traffic():
    predictor = isvc({"replicas": {"min": 0, "max": 4}, "canary_percent": 10})["spec"]["predictor"]
    assert predictor["minReplicas"] == 0
    assert predictor["canaryTrafficPercent"] == 10


def test_knative_mode_refuses_cpu_without_the_hpa_class_and_names_the_ways_out():
    errors = mode_errors({"target_cpu_utilization": 60}, KServeMode.KNATIVE)
    message = errors["scale_metric"]
    assert "Knative mode" in message
    assert "autoscaler_class: hpa" in message
    assert "standard mode" in message


def test_knative_mode_with_hpa_class_scales_on_cpu_and_annotates_the_class():
    obj = isvc({"autoscaler_class": "hpa", "target_cpu_utilization": 60})
    assert obj["metadata"]["annotations"]["autoscaling.knative.dev/class"] == (
        "hpa.autoscaling.knative.dev"
    )
    assert obj["spec"]["predictor"]["scaleMetric"] == "cpu"
    assert obj["spec"]["predictor"]["scaleTarget"] == 60
    errors = mode_errors({"autoscaler_class": "hpa", "replicas": {"min": 0}}, KServeMode.KNATIVE)
    assert "cannot scale to zero" in errors["replicas.min"]


def test_standard_mode_uses_an_hpa_on_cpu():
    obj = isvc({}, KServeMode.STANDARD)
    annotations = obj["metadata"]["annotations"]
    assert annotations["serving.kserve.io/deploymentMode"] == "Standard"
    assert annotations["serving.kserve.io/autoscalerClass"] == "hpa"
    assert obj["spec"]["predictor"]["scaleMetric"] == "cpu"
    assert obj["spec"]["predictor"]["scaleTarget"] == 70


@pytest.mark.parametrize(
    "config, path, fragment",
    [
        ({"canary_percent": 10}, "canary_percent", "ignores canaryTrafficPercent"),
        ({"replicas": {"min": 0}}, "replicas.min", "raises minReplicas 0 to 1"),
        ({"scale_metric": "concurrency"}, "scale_metric", "knative mode"),
        ({"autoscaler_class": "kpa"}, "autoscaler_class", "Knative's autoscaler"),
    ],
)
def test_standard_mode_refuses_what_it_would_ignore_or_reject(config, path, fragment):
    message = mode_errors(config, KServeMode.STANDARD)[path]
    assert "Standard mode" in message
    assert fragment in message


def test_unsupported_kserve_version_is_refused():
    with pytest.raises(ConfigError) as caught:
        render(make_request(Runtime.KSERVE_SKLEARN, kserve_version="0.11"))
    assert "0.20" in caught.value.errors["kserve_version"]


def test_the_mode_does_not_touch_other_runtimes():
    for mode in KServeMode:
        files = render(make_request(Runtime.CUSTOM, kserve_mode=mode)).files
        assert files == render(make_request(Runtime.CUSTOM)).files


@pytest.mark.parametrize(
    "uri, fragment",
    [
        ("models:/churn/4", "only an MLflow client can resolve"),
        ("file:///home/alice/mlruns/1/abc/artifacts/model", "path on the machine"),
        ("oci://registry.example.com/models/churn:4", "Pin an OCI model car by digest"),
    ],
)
def test_kserve_refuses_uris_a_cluster_cannot_fetch(uri, fragment):
    with pytest.raises(ConfigError) as caught:
        render(make_request(Runtime.KSERVE_SKLEARN, model_uri=uri))
    assert fragment in caught.value.errors["storage_uri"]


def test_kserve_accepts_a_model_car_pinned_by_digest():
    uri = "oci://registry.example.com/models/churn@sha256:" + "b" * 64
    assert isvc({"storage_uri": uri})["spec"]["predictor"]["model"]["storageUri"] == uri


# --- Seldon Core 2 storage --------------------------------------------------------------
def test_seldon_takes_rclone_remotes_and_a_storage_secret():
    spec = load(
        render(
            make_request(
                Runtime.SELDON,
                config={"storage_uri": "minio:models/churn/4", "storage_secret": "minio-secret"},
            )
        ).files["model.yaml"]
    )["spec"]
    assert spec["storageUri"] == "minio:models/churn/4"
    assert spec["secretName"] == "minio-secret"
    plain = load(render(make_request(Runtime.SELDON)).files["model.yaml"])["spec"]
    assert "secretName" not in plain  # preloaded secrets: the field stays empty


@pytest.mark.parametrize(
    "uri, fragment",
    [
        ("models:/churn/4", "only an MLflow client"),
        ("file:///srv/model", "path on the machine"),
        ("/srv/model", "path on the machine"),
    ],
)
def test_seldon_refuses_uris_rclone_cannot_fetch(uri, fragment):
    with pytest.raises(ConfigError) as caught:
        render(make_request(Runtime.SELDON, model_uri=uri))
    assert fragment in caught.value.errors["storage_uri"]


# --- streaming probes -------------------------------------------------------------------
def consumer(probes: dict | None) -> dict:
    config = dict(CONFIGS[Runtime.STREAMING])
    if probes is not None:
        config["probes"] = probes
    files = render(make_request(Runtime.STREAMING, config=config)).files
    return load(files["deployment.yaml"])["spec"]["template"]["spec"]["containers"][0]


def test_streaming_probes_http_by_default_with_a_port():
    container = consumer(None)
    assert container["ports"][0]["name"] == "http"
    assert container["readinessProbe"]["httpGet"]["port"] == "http"


def test_streaming_exec_probes_run_a_command_and_open_no_port():
    container = consumer({"type": "exec", "command": ["python", "-m", "healthcheck"]})
    assert "ports" not in container
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["exec"] == {"command": ["python", "-m", "healthcheck"]}
        assert "httpGet" not in container[probe]


def test_streaming_without_probes_has_neither_probes_nor_port():
    container = consumer({"type": "none"})
    assert "ports" not in container
    assert not {"readinessProbe", "livenessProbe", "startupProbe"} & set(container)
