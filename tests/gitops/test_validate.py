"""The validator: schemas, Secrets, secrets inside values, labels, kustomization."""

from __future__ import annotations

import base64

import pytest
import yaml

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
