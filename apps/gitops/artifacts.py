"""Does a model's artifact folder have the layout its model server loads? A pure check.

Each model server reads a fixed layout under the storage URI, and a wrong one is only
found when the pod crash-loops after the release was approved and committed. Given the
runtime and the list of files under the URI (paths relative to it, ``/``-separated, as
``RegistryClient.list_artifact_files`` returns them), ``layout_problems`` says what is
missing and what the server expects, one sentence per problem; an empty list means the
layout fits. The layouts are those of KServe v0.20's servers and Seldon Core 2's MLServer
(docs/cluster-support.md names the sources).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from apps.gitops.runtimes import Runtime

SKLEARN_FILES = (".joblib", ".pkl", ".pickle")
XGBOOST_FILES = (".bst", ".json", ".ubj")
# "<model>/<version>/..." in a Triton model repository; versions are whole numbers.
_TRITON_VERSION_DIR = re.compile(r"[^/]+/[0-9]+/.+")


def layout_problems(
    runtime: Runtime | str,
    files: Iterable[str],
    *,
    requirements: Iterable[str] = ("mlflow",),
) -> list[str]:
    """What keeps ``runtime``'s model server from loading this artifact folder.

    ``requirements`` are a Seldon Model's server capabilities, which decide the server
    (and so the layout); other runtimes ignore them. Image runtimes (custom, FastAPI,
    BentoML, batch, streaming) load models their own way and are not checked.
    """
    runtime = Runtime(runtime)
    paths = _normalise(files)
    if runtime == Runtime.KSERVE_SKLEARN:
        problems = _one_top_level(paths, SKLEARN_FILES, "KServe's scikit-learn server")
        if problems and "model.skops" in paths:
            problems.append(
                "model.skops is MLflow's skops serialisation, which the server does not "
                "read: serve the MLflow model with the kserve-mlflow runtime, or log it "
                "with serialization_format='cloudpickle'."
            )
        return problems
    if runtime == Runtime.KSERVE_XGBOOST:
        problems = _one_top_level(paths, XGBOOST_FILES, "KServe's XGBoost server")
        if problems and any(p.endswith(".xgb") for p in paths):
            problems.append(
                "model.xgb (what older MLflow versions wrote by default) is not read by the "
                "server: log the model with model_format='ubj' or 'json'."
            )
        return problems
    if runtime == Runtime.KSERVE_ONNX:
        return _onnx(paths)
    if runtime == Runtime.KSERVE_TRITON:
        return _triton(paths)
    if runtime == Runtime.KSERVE_PYTORCH:
        return _torchserve(paths)
    if runtime == Runtime.KSERVE_MLFLOW:
        return _mlmodel(paths, "MLServer's MLflow runtime")
    if runtime == Runtime.SELDON:
        return _seldon(paths, set(requirements))
    return []


def _normalise(files: Iterable[str]) -> list[str]:
    out = []
    for name in files:
        path = name.replace("\\", "/").lstrip("/")
        while path.startswith("./"):
            path = path[2:]
        if path:
            out.append(path)
    return sorted(set(out))


def _top_level(paths: list[str]) -> list[str]:
    return [p for p in paths if "/" not in p]


def _listing(paths: list[str], limit: int = 8) -> str:
    if not paths:
        return "the folder is empty"
    shown = ", ".join(paths[:limit])
    more = f" and {len(paths) - limit} more" if len(paths) > limit else ""
    return f"found: {shown}{more}"


def _one_top_level(paths: list[str], suffixes: tuple[str, ...], server: str) -> list[str]:
    # These servers list the top level only and refuse zero or several candidates.
    found = [p for p in _top_level(paths) if p.endswith(suffixes)]
    wanted = "/".join(suffixes)
    if not found:
        return [
            f"No {wanted} file at the top of the model folder; {server} loads exactly one "
            f"({_listing(paths)})."
        ]
    if len(found) > 1:
        return [
            f"{len(found)} model files at the top of the model folder ({', '.join(found)}); "
            f"{server} refuses more than one {wanted} file."
        ]
    return []


def _onnx(paths: list[str]) -> list[str]:
    # KServe serves ONNX with Triton, which reads a model repository, not a bare file.
    if any(_TRITON_VERSION_DIR.fullmatch(p) and p.endswith("/model.onnx") for p in paths):
        return []
    if "model.onnx" in paths:
        return [
            "model.onnx is at the top of the folder, but Triton (KServe's ONNX runtime) "
            "reads a model repository: put it at <model-name>/1/model.onnx."
        ]
    return [
        "No <model-name>/<version>/model.onnx: Triton (KServe's ONNX runtime) loads ONNX "
        f"models from a model repository laid out that way ({_listing(paths)})."
    ]


def _triton(paths: list[str]) -> list[str]:
    models = sorted({p.split("/", 1)[0] for p in paths if _TRITON_VERSION_DIR.fullmatch(p)})
    if not models:
        return [
            "No <model-name>/<version>/ folder: Triton loads a model repository with one "
            f"folder per model and numbered version folders inside ({_listing(paths)})."
        ]
    return [
        f"{model}/config.pbtxt is missing: Triton needs each model's configuration "
        "(backend, inputs, outputs) next to its version folders."
        for model in models
        if f"{model}/config.pbtxt" not in paths
    ]


def _torchserve(paths: list[str]) -> list[str]:
    # KServe's TorchServe runtime starts with --ts-config=<uri>/config/config.properties
    # and --model-store=<uri>/model-store.
    problems = []
    if "config/config.properties" not in paths:
        problems.append(
            "config/config.properties is missing: KServe starts TorchServe with that "
            "file (inference address, model snapshot) from the storage URI."
        )
    if not any(re.fullmatch(r"model-store/[^/]+\.mar", p) for p in paths):
        problems.append(
            "No model-store/*.mar: TorchServe loads model archives (built with "
            "torch-model-archiver) from the model-store folder."
        )
    return problems


def _mlmodel(paths: list[str], server: str) -> list[str]:
    if "MLmodel" in paths:
        return []
    return [
        f"No MLmodel file at the top of the folder: {server} loads an MLflow model "
        "(the folder mlflow.<flavor>.log_model writes), not a bare model file "
        f"({_listing(paths)})."
    ]


def _seldon(paths: list[str], requirements: set[str]) -> list[str]:
    if "mlflow" in requirements:
        return _mlmodel(paths, "Seldon's MLServer (mlflow capability)")
    # MLServer looks for well-known file names when given a folder.
    if "sklearn" in requirements:
        return _well_known(paths, SKLEARN_FILES, "sklearn")
    if "xgboost" in requirements:
        return _well_known(paths, XGBOOST_FILES, "xgboost")
    return []  # a custom server's layout is its own business


def _well_known(paths: list[str], suffixes: tuple[str, ...], capability: str) -> list[str]:
    names = [f"model{suffix}" for suffix in suffixes]
    if any(name in paths for name in names):
        return []
    return [
        f"None of {', '.join(names)} at the top of the folder: Seldon's MLServer "
        f"({capability} capability) loads a model file by one of those names "
        f"({_listing(paths)})."
    ]
