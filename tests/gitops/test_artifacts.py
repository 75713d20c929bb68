"""The pure artifact layout check, per model server."""

from __future__ import annotations

import pytest

from apps.gitops.artifacts import layout_problems
from apps.gitops.runtimes import Runtime

FITS = {
    Runtime.KSERVE_SKLEARN: ["model.joblib", "requirements.txt"],
    Runtime.KSERVE_XGBOOST: ["model.ubj"],
    Runtime.KSERVE_ONNX: ["churn/1/model.onnx"],
    Runtime.KSERVE_TRITON: ["churn/config.pbtxt", "churn/1/model.plan"],
    Runtime.KSERVE_PYTORCH: ["config/config.properties", "model-store/churn.mar"],
    Runtime.KSERVE_MLFLOW: ["MLmodel", "model.pkl", "conda.yaml"],
    Runtime.SELDON: ["MLmodel", "model.pkl"],
}


@pytest.mark.parametrize("runtime", list(FITS))
def test_expected_layouts_fit(runtime):
    assert layout_problems(runtime, FITS[runtime]) == []


@pytest.mark.parametrize("runtime", list(FITS))
def test_an_empty_folder_never_fits(runtime):
    assert layout_problems(runtime, [])


@pytest.mark.parametrize(
    "runtime, files, fragments",
    [
        (Runtime.KSERVE_SKLEARN, ["a.pkl", "b.joblib"], ["refuses more than one"]),
        (Runtime.KSERVE_SKLEARN, ["sub/model.pkl"], ["No .joblib/.pkl/.pickle", "sub/model.pkl"]),
        (Runtime.KSERVE_XGBOOST, ["model.xgb", "MLmodel"], ["model_format='ubj'"]),
        (Runtime.KSERVE_ONNX, ["model.onnx"], ["<model-name>/1/model.onnx"]),
        (Runtime.KSERVE_TRITON, ["churn/1/model.onnx"], ["churn/config.pbtxt is missing"]),
        (Runtime.KSERVE_PYTORCH, ["model-store/churn.mar"], ["config/config.properties"]),
        (Runtime.KSERVE_PYTORCH, ["config/config.properties", "churn.mar"], ["model-store/*.mar"]),
        (Runtime.KSERVE_MLFLOW, ["model.pkl"], ["No MLmodel"]),
    ],
)
def test_problems_say_what_is_missing_and_what_the_server_expects(runtime, files, fragments):
    text = " ".join(layout_problems(runtime, files))
    for fragment in fragments:
        assert fragment in text


def test_seldon_layout_follows_the_requirements():
    assert layout_problems(Runtime.SELDON, ["model.joblib"], requirements=["sklearn"]) == []
    assert "model.joblib" in layout_problems(Runtime.SELDON, ["x.bin"], requirements=["sklearn"])[0]
    assert layout_problems(Runtime.SELDON, ["model.bst"], requirements=["xgboost"]) == []
    assert layout_problems(Runtime.SELDON, ["anything"], requirements=["my-server"]) == []


def test_image_runtimes_are_not_checked():
    for runtime in (Runtime.CUSTOM, Runtime.BENTOML, Runtime.BATCH, Runtime.STREAMING):
        assert layout_problems(runtime, []) == []


def test_paths_are_normalised():
    assert (
        layout_problems(
            Runtime.KSERVE_PYTORCH, ["./config/config.properties", "/model-store/a.mar"]
        )
        == []
    )
