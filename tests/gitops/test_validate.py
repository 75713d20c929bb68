"""The validator: schemas, Secrets, secrets inside values, labels, kustomization."""

from __future__ import annotations

import base64
import time

import pytest
import yaml

from apps.gitops.config import ConfigError
from apps.gitops.errors import ManifestError
from apps.gitops.render import render
from apps.gitops.render.common import dump
from apps.gitops.runtimes import Runtime
from apps.gitops.validate import validate_manifests
from tests.gitops.conftest import make_request

# Built at run time so this file itself does not trip secret scanners.
PEM = "-----BEGIN " + "RSA PRIVATE KEY-----\nMIIEow...\n-----END RSA PRIVATE KEY-----\n"
AWS_KEY_ID = "AKIA" + "IOSFODNN7EXAMPLE"
GITHUB_TOKEN = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"


def rendered_files(runtime: Runtime = Runtime.CUSTOM) -> dict[str, str]:
    return dict(render(make_request(runtime)).files)


def problems(files, **kwargs) -> list[str]:
    kwargs.setdefault("require_image_digest", False)
    with pytest.raises(ManifestError) as caught:
        validate_manifests(files, **kwargs)
    return caught.value.problems


def edit(files: dict[str, str], name: str, change) -> dict[str, str]:
    obj = yaml.safe_load(files[name])
    change(obj)
    return {**files, name: dump(obj)}


@pytest.mark.parametrize("runtime", list(Runtime))
def test_rendered_manifests_validate(runtime):
    validate_manifests(rendered_files(runtime), require_image_digest=False)


def test_kind_secret_is_refused():
    files = rendered_files()
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db"},
        "stringData": {"password": "hunter2"},
    }
    files["secret.yaml"] = dump(secret)
    found = problems(files)
    assert any("kind: Secret is never committed" in p for p in found)
    assert any("does not list secret.yaml" in p for p in found)


def test_a_second_document_smuggling_a_secret_is_refused():
    files = rendered_files()
    files["service.yaml"] += "---\napiVersion: v1\nkind: Secret\nmetadata: {name: x}\n"
    assert any("exactly one YAML document" in p for p in problems(files))


@pytest.mark.parametrize(
    "planted, label",
    [
        (PEM, "PEM private key"),
        (AWS_KEY_ID, "AWS access key id"),
        (GITHUB_TOKEN, "GitHub token"),
        ("postgres://app:s3cret@db:5432/app", "password in a URL"),
    ],
)
def test_planted_secrets_are_refused_without_repeating_them(planted, label):
    files = edit(
        rendered_files(),
        "deployment.yaml",
        lambda d: d["spec"]["template"]["spec"]["containers"][0]["env"].append(
            {"name": "NOTE", "value": planted}
        ),
    )
    found = problems(files)
    assert any(label in p and "deployment.yaml" in p for p in found)
    assert all(planted.strip() not in p for p in found), "never echo the secret"


def test_a_secret_in_a_yaml_comment_is_still_found():
    files = rendered_files()
    files["service.yaml"] = f"# {AWS_KEY_ID}\n" + files["service.yaml"]
    assert any("line 1" in p and "AWS" in p for p in problems(files))


def test_a_secret_hidden_behind_yaml_escapes_is_found():
    files = rendered_files()
    hidden = "\\x41KIA" + AWS_KEY_ID[4:]  # "\x41" is "A" once parsed
    files["service.yaml"] = files["service.yaml"].replace(
        "  name: churn\n", f'  name: churn\n  annotations: {{note: "{hidden}"}}\n', 1
    )
    assert any("AWS access key id" in p for p in problems(files))


def test_forbidden_values_in_clear_and_base64_are_refused():
    secret = "the-control-plane-signing-key"
    in_clear = edit(
        rendered_files(),
        "service.yaml",
        lambda d: d["metadata"]["annotations"].update(note=f"x{secret}y"),
    )
    assert any(
        "control plane's own secrets" in p for p in problems(in_clear, forbidden_values={secret})
    )
    encoded = base64.b64encode(secret.encode()).decode()
    as_base64 = edit(
        rendered_files(),
        "service.yaml",
        lambda d: d["metadata"]["annotations"].update(note=encoded),
    )
    assert any(
        "control plane's own secrets" in p for p in problems(as_base64, forbidden_values={secret})
    )
    # Too short to search for without false alarms: ignored, not an error.
    validate_manifests(rendered_files(), require_image_digest=False, forbidden_values={"ab"})


def test_core_kinds_are_checked_strictly_against_kubernetes_schemas():
    files = edit(rendered_files(), "deployment.yaml", lambda d: d["spec"].update(replicass=3))
    assert any("replicass" in p and "deployment.yaml" in p for p in problems(files))
    files = edit(rendered_files(), "hpa.yaml", lambda d: d["spec"].update(minReplicas="two"))
    assert any("hpa.yaml" in p and "minReplicas" in p for p in problems(files))


def test_custom_resources_are_checked_against_the_project_schemas():
    files = edit(
        rendered_files(Runtime.KSERVE_SKLEARN),
        "inferenceservice.yaml",
        lambda d: d["spec"]["predictor"].update(canaryTrafficPercent=150),
    )
    assert any("canaryTrafficPercent" in p for p in problems(files))
    files = edit(
        rendered_files(Runtime.STREAMING),
        "scaledobject.yaml",
        lambda d: d["spec"]["triggers"][0]["metadata"].update(lagThreshold=5),
    )
    assert any("lagThreshold" in p for p in problems(files))
    files = edit(
        rendered_files(Runtime.SELDON),
        "model.yaml",
        lambda d: d["spec"].update(storageUri="runs:/abc"),
    )
    assert any("storageUri" in p for p in problems(files))


def test_unknown_kinds_and_missing_labels_are_refused():
    files = edit(rendered_files(), "service.yaml", lambda d: d.update(kind="Ingress"))
    assert any("not a kind Slipway renders" in p for p in problems(files))
    files = edit(
        rendered_files(), "pdb.yaml", lambda d: d["metadata"]["labels"].pop("slipway.io/release-id")
    )
    assert any("slipway.io/release-id" in p for p in problems(files))


def test_kustomization_must_list_exactly_the_object_files():
    files = rendered_files()
    del files["hpa.yaml"]
    assert any("lists hpa.yaml, which is not here" in p for p in problems(files))
    files = rendered_files()
    del files["kustomization.yaml"]
    assert any("kustomization.yaml is missing" in p for p in problems(files))


def test_file_names_must_be_bare():
    files = rendered_files()
    files["../escape.yaml"] = files.pop("service.yaml")
    assert any("not an allowed manifest file name" in p for p in problems(files))


def test_every_problem_is_listed_together():
    files = edit(rendered_files(), "deployment.yaml", lambda d: d["spec"].update(bogus=1))
    files["secret.yaml"] = dump({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}})
    found = problems(files, require_image_digest=True)
    assert len(found) >= 3


# --- what the API server checks beyond the schemas ---------------------------------------
def test_a_bad_label_key_is_refused_naming_the_object_and_field():
    files = edit(
        rendered_files(),
        "deployment.yaml",
        lambda d: d["metadata"]["labels"].update({"a/b/c": "x"}),
    )
    assert any(
        p.startswith("deployment.yaml: Deployment metadata.labels: label key 'a/b/c'")
        for p in problems(files)
    )


def test_pod_template_and_selector_labels_are_checked_too():
    files = edit(
        rendered_files(),
        "deployment.yaml",
        lambda d: d["spec"]["template"]["metadata"]["labels"].update({"team": "x" * 64}),
    )
    assert any(
        "Deployment spec.template.metadata.labels.team: label value: the value is 64" in p
        for p in problems(files)
    )
    files = edit(
        rendered_files(), "service.yaml", lambda d: d["spec"]["selector"].update({"Bad.io/x": "y"})
    )
    assert any(
        "service.yaml: Service spec.selector: label key 'Bad.io/x'" in p for p in problems(files)
    )
    files = edit(
        rendered_files(Runtime.BATCH),
        "cronjob.yaml",
        lambda d: d["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"].update(
            {"-x": "y"}
        ),
    )
    assert any(
        "CronJob spec.jobTemplate.spec.template.metadata.labels: label key '-x'" in p
        for p in problems(files)
    )


def test_kserve_predictor_labels_reach_pods_so_they_are_checked():
    files = edit(
        rendered_files(Runtime.KSERVE_SKLEARN),
        "inferenceservice.yaml",
        lambda d: d["spec"]["predictor"]["labels"].update({"x/y/z": "1"}),
    )
    assert any(
        "inferenceservice.yaml: InferenceService spec.predictor.labels: label key 'x/y/z'" in p
        for p in problems(files)
    )


def test_oversize_annotations_are_refused_naming_the_object():
    big = "x" * (256 * 1024)
    files = edit(
        rendered_files(Runtime.KSERVE_SKLEARN),
        "inferenceservice.yaml",
        lambda d: d["metadata"]["annotations"].update({"note": big}),
    )
    assert any(
        p.startswith(
            "inferenceservice.yaml: InferenceService metadata.annotations: annotations take"
        )
        and "at most 262144" in p
        for p in problems(files)
    )


def test_annotation_keys_are_checked_but_capitals_are_fine():
    files = edit(
        rendered_files(),
        "pdb.yaml",
        lambda d: d["metadata"]["annotations"].update({"Example.COM/Note": "fine"}),
    )
    validate_manifests(files, require_image_digest=False)
    files = edit(
        rendered_files(),
        "pdb.yaml",
        lambda d: d["metadata"]["annotations"].update({"only/one/slash": "no"}),
    )
    assert any(
        "pdb.yaml: PodDisruptionBudget metadata.annotations: annotation key 'only/one/slash'" in p
        for p in problems(files)
    )


def _set_requests(**amounts):
    def change(doc):
        doc["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"].update(amounts)

    return change


CONTAINER = "Deployment spec.template.spec.containers[0].resources"


@pytest.mark.parametrize("bad", ["1.5.5", "Mi", "1MiB", "--1", "1e1.5"])
def test_a_bad_quantity_in_a_core_kind_is_refused_naming_the_field(bad):
    # kubernetes-validate's schema takes any string for a Quantity; the grammar does not.
    files = edit(rendered_files(), "deployment.yaml", _set_requests(cpu=bad))
    assert any(
        p.startswith(f"deployment.yaml: {CONTAINER}.requests.cpu: {bad!r} is not a Kubernetes")
        for p in problems(files)
    )


def test_negative_quantities_and_requests_above_limits_are_refused():
    files = edit(rendered_files(), "deployment.yaml", _set_requests(cpu="-1"))
    assert (
        f"deployment.yaml: {CONTAINER}.requests.cpu: '-1' must be greater than or equal to 0."
        in (problems(files))
    )
    files = edit(rendered_files(), "deployment.yaml", _set_requests(memory="3Gi"))
    found = problems(files)  # the rendered limit is the 512Mi default
    assert any(f"{CONTAINER}.requests.memory: must be less than or equal to" in p for p in found)


def test_extended_resources_are_whole_and_requested_as_limited():
    files = edit(rendered_files(), "deployment.yaml", _set_requests(**{"nvidia.com/gpu": "0.5"}))
    found = problems(files)
    assert any(
        f"{CONTAINER}.requests.nvidia.com/gpu: '0.5' must be an integer." in p for p in found
    )
    assert any("a limit must be set for nvidia.com/gpu" in p for p in found)


def test_unusual_but_valid_quantities_pass():
    files = edit(
        rendered_files(),
        "deployment.yaml",
        _set_requests(cpu="500n", memory="0.25Gi", **{"example.com/foo": "1e3"}),
    )
    files = edit(
        files,
        "deployment.yaml",
        lambda d: d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"].update(
            {"memory": "1Ei", "example.com/foo": 1000}
        ),
    )
    validate_manifests(files, require_image_digest=False)


def test_custom_resource_quantities_are_checked_with_the_crd_pattern_and_the_parser():
    files = edit(
        rendered_files(Runtime.KSERVE_SKLEARN),
        "inferenceservice.yaml",
        lambda d: d["spec"]["predictor"]["model"]["resources"]["requests"].update(cpu="1e1.5"),
    )
    found = problems(files)
    # The CRD pattern lets a fractional exponent through; the server's parser does not.
    assert any(
        "InferenceService spec.predictor.model.resources.requests.cpu: '1e1.5' is not" in p
        for p in found
    )
    files = edit(
        rendered_files(Runtime.SELDON), "model.yaml", lambda d: d["spec"].update(memory="1MiB")
    )
    assert any(p.startswith("model.yaml: Model spec.memory: '1MiB'") for p in problems(files))
    files = edit(
        rendered_files(Runtime.SELDON), "model.yaml", lambda d: d["spec"].update(memory="100u")
    )
    validate_manifests(files, require_image_digest=False)


DIGEST = "sha256:" + "0123456789abcdef" * 4


def test_digest_pinned_oci_model_uris_render_and_validate():
    uri = f"oci://registry.example.com/ml/churn@{DIGEST}"
    rendered = render(make_request(Runtime.KSERVE_SKLEARN, config={"storage_uri": uri}))
    assert uri in "".join(rendered.files.values())


@pytest.mark.parametrize("scheme", ["oci://registry.example.com/ml/churn@" + DIGEST, "pvc://c/m"])
def test_seldon_refuses_uris_rclone_cannot_fetch_before_rendering(scheme):
    with pytest.raises(ConfigError) as caught:
        render(make_request(Runtime.SELDON, config={"storage_uri": scheme}))
    assert "rclone" in caught.value.errors["storage_uri"]


def test_a_malformed_oci_digest_is_refused_naming_the_field():
    uri = "oci://registry.example.com/ml/churn@sha256:" + "A" * 64
    files = edit(
        rendered_files(Runtime.KSERVE_SKLEARN),
        "inferenceservice.yaml",
        lambda d: d["spec"]["predictor"]["model"].update(storageUri=uri),
    )
    assert any(
        "InferenceService spec.predictor.model.storageUri: a sha256 digest is written in lowercase"
        in p
        for p in problems(files)
    )
    files = edit(
        rendered_files(Runtime.SELDON),
        "model.yaml",
        lambda d: d["spec"].update(storageUri="oci://r.io/m@sha256:" + "a" * 63),
    )
    assert any("Model spec.storageUri: a sha256 digest has 64" in p for p in problems(files))


def test_a_long_value_is_scanned_in_linear_time():
    # The URL-password pattern once took ~2 minutes on a 256 KiB run of letters and
    # would take far longer on a 1 MiB file: quadratic. Linear, this is well under a
    # second; the bound leaves room for a loaded machine.
    files = edit(
        rendered_files(),
        "deployment.yaml",
        lambda d: d["spec"]["template"]["spec"]["containers"][0]["env"].append(
            {"name": "NOTE", "value": "x" * (512 * 1024)}
        ),
    )
    started = time.monotonic()
    validate_manifests(files, require_image_digest=False)
    assert time.monotonic() - started < 20


def test_custom_resource_quantities_are_int_or_string_like_the_official_crds():
    def set_cpu(value):
        return lambda d: d["spec"]["predictor"]["model"]["resources"]["requests"].update(cpu=value)

    files = edit(rendered_files(Runtime.KSERVE_SKLEARN), "inferenceservice.yaml", set_cpu(2))
    files = edit(
        files,
        "inferenceservice.yaml",
        lambda d: d["spec"]["predictor"]["model"]["resources"]["limits"].update(cpu="4"),
    )
    validate_manifests(files, require_image_digest=False)
    # x-kubernetes-int-or-string: a JSON float is neither.
    files = edit(rendered_files(Runtime.KSERVE_SKLEARN), "inferenceservice.yaml", set_cpu(0.5))
    assert any("resources.requests.cpu" in p for p in problems(files))


@pytest.mark.parametrize(
    "threshold, ok", [("100", True), ("+7", True), ("0", False), ("-1", False)]
)
def test_kafka_lag_threshold_is_a_positive_integer_as_keda_requires(threshold, ok):
    files = edit(
        rendered_files(Runtime.STREAMING),
        "scaledobject.yaml",
        lambda d: d["spec"]["triggers"][0]["metadata"].update(lagThreshold=threshold),
    )
    if ok:
        validate_manifests(files, require_image_digest=False)
    else:
        assert any("lagThreshold" in p for p in problems(files))
