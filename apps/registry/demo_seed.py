"""Real models for the demo and the tests: small scikit-learn classifiers trained on data
sets that ship with scikit-learn (no downloads), logged and registered in MLflow.

Each version is a real MLflow 3 logged model (MLmodel with a signature, the pickled
estimator), linked to a run carrying params, metrics and the prediction-score baseline
artifact ``slipway/score_baseline.json`` that drift detection compares against. Versions
of one model differ in their hyperparameters, so their metrics differ.

Only ``MlflowClient`` calls are used, never MLflow's fluent API, which would set the
process-wide tracking URI (and the MLFLOW_TRACKING_URI environment variable) as a side
effect. Needs the full ``mlflow`` package for a ``sqlite:///`` store (the demo extra).
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

SCORE_BUCKETS = [round(0.1 * i, 1) for i in range(1, 11)]  # 0.1, 0.2, ..., 1.0
EXPERIMENT_NAME = "slipway-demo"
# Who the demo runs say trained the models (MLflow run user_id): the demo ML engineer.
DEMO_TRAINER = "alice"

# Hyperparameters per version, cycled: version 1 uses the first entry, and so on.
_LOGISTIC_C = [1.0, 0.1, 10.0, 0.01, 3.0, 0.3]
_FOREST = [(20, 3), (40, 5), (10, 2), (60, 8), (30, 4)]  # (n_estimators, max_depth)


@dataclass(frozen=True)
class SeededVersion:
    name: str
    version: int
    run_id: str
    model_id: str
    dataset: str
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)


def seed_demo_models(tracking_uri: str, models: dict[str, int]) -> list[SeededVersion]:
    """Train and register ``models[name]`` new versions of each named model.

    Calling it again adds versions (MLflow numbers them on). For a ``sqlite:///`` URI the
    database (and an ``artifacts`` folder beside it) is created if missing.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    is_sqlite = tracking_uri.startswith("sqlite:///")
    artifact_root = None
    if is_sqlite:
        db_path = Path(tracking_uri.removeprefix("sqlite:///"))
        db_path.parent.mkdir(parents=True, exist_ok=True)
        artifact_root = (db_path.parent / "artifacts").resolve().as_uri()
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    experiment = client.get_experiment_by_name(EXPERIMENT_NAME)
    experiment_id = (
        experiment.experiment_id
        if experiment is not None
        else client.create_experiment(EXPERIMENT_NAME, artifact_location=artifact_root)
    )
    seeded: list[SeededVersion] = []
    for model_index, (name, count) in enumerate(models.items()):
        try:
            client.create_registered_model(
                name, description=f"Demo classifier '{name}', trained by Slipway's demo seed."
            )
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        existing = len(client.search_model_versions(f"name = '{name}'"))
        for i in range(count):
            seeded.append(
                _train_and_register(
                    client,
                    experiment_id,
                    name,
                    model_index=model_index,
                    variant=existing + i,
                    source_is_model_uri=not is_sqlite,
                )
            )
    return seeded


def _train_and_register(
    client,
    experiment_id: str,
    name: str,
    *,
    model_index: int,
    variant: int,
    source_is_model_uri: bool,
) -> SeededVersion:
    import mlflow.sklearn
    import numpy as np
    import sklearn
    from mlflow.entities import LoggedModelStatus, Metric, Param
    from mlflow.models import infer_signature
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import (
        accuracy_score,
        f1_score,
        log_loss,
        precision_score,
        recall_score,
        roc_auc_score,
    )
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    dataset = "breast_cancer" if model_index % 2 == 0 else "wine_class_0"
    x_train, x_test, y_train, y_test = _dataset(dataset)
    if model_index % 2 == 0:
        c = _LOGISTIC_C[variant % len(_LOGISTIC_C)]
        estimator = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=500))
        params = {"estimator": "logistic_regression", "C": str(c)}
    else:
        n_estimators, max_depth = _FOREST[variant % len(_FOREST)]
        estimator = RandomForestClassifier(
            n_estimators=n_estimators, max_depth=max_depth, random_state=variant
        )
        params = {
            "estimator": "random_forest",
            "n_estimators": str(n_estimators),
            "max_depth": str(max_depth),
        }
    params |= {"dataset": dataset, "train_rows": str(len(x_train)), "random_state": "0"}
    trusted = ["sklearn.tree._tree.Tree"] if params["estimator"] == "random_forest" else None
    estimator.fit(x_train, y_train)
    started = time.perf_counter()
    scores = estimator.predict_proba(x_test)[:, 1]
    latency_ms = (time.perf_counter() - started) * 1000
    predicted = (scores >= 0.5).astype(int)
    metrics = {
        "accuracy": accuracy_score(y_test, predicted),
        "roc_auc": roc_auc_score(y_test, scores),
        "f1": f1_score(y_test, predicted),
        "precision": precision_score(y_test, predicted, zero_division=0),
        "recall": recall_score(y_test, predicted),
        "log_loss": log_loss(y_test, scores),
        "predict_latency_ms": latency_ms,
    }
    metrics = {k: round(float(v), 6) for k, v in metrics.items()}
    # bucket i holds scores in (le[i-1], le[i]]: the first bound >= the score.
    buckets = np.searchsorted(np.array(SCORE_BUCKETS), np.clip(scores, 0.0, 1.0), side="left")
    counts = np.bincount(buckets, minlength=len(SCORE_BUCKETS)).tolist()

    # mlflow.user is the run's user_id (MLflow reads it from this tag): the demo's models
    # are trained by alice, so separation of duties has someone to refuse.
    run = client.create_run(
        experiment_id,
        run_name=f"{name}-v{variant + 1}",
        tags={"slipway.demo": "true", "mlflow.user": DEMO_TRAINER},
    )
    run_id = run.info.run_id
    now_ms = int(time.time() * 1000)
    client.log_batch(
        run_id,
        metrics=[Metric(k, v, now_ms, 0) for k, v in metrics.items()],
        params=[Param(k, v) for k, v in params.items()],
    )
    client.log_dict(run_id, {"le": SCORE_BUCKETS, "counts": counts}, "slipway/score_baseline.json")
    logged = client.create_logged_model(
        experiment_id, name="model", source_run_id=run_id, params=params
    )
    with tempfile.TemporaryDirectory(prefix="slipway-seed-") as tmp:
        path = os.path.join(tmp, "model")
        mlflow.sklearn.save_model(
            estimator,
            path,
            signature=infer_signature(x_test.head(5), scores[:5]),
            # Explicit requirements: inferring them starts a subprocess (seconds per model).
            pip_requirements=[f"scikit-learn=={sklearn.__version__}"],
            # Trees are refused by skops unless trusted; these were trained just above.
            skops_trusted_types=trusted,
        )
        client.log_model_artifacts(logged.model_id, path)
    client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    client.set_terminated(run_id)
    # Over HTTP the server resolves models:/<id> itself; MLflow's SQL registry store would
    # resolve it through the process-wide tracking URI, so give it the location directly.
    source = f"models:/{logged.model_id}" if source_is_model_uri else logged.artifact_location
    mv = client.create_model_version(
        name,
        source=source,
        run_id=run_id,
        model_id=logged.model_id,
        tags={"dataset": dataset, "estimator": params["estimator"]},
        description=_describe(params),
    )
    return SeededVersion(
        name=name,
        version=int(mv.version),
        run_id=run_id,
        model_id=logged.model_id,
        dataset=dataset,
        metrics=metrics,
        params=params,
    )


def _describe(params: dict[str, str]) -> str:
    knobs = ", ".join(f"{k}={v}" for k, v in params.items() if k in _KNOBS)
    return f"{params['estimator']} on {params['dataset']} ({knobs})"


_KNOBS = ("C", "n_estimators", "max_depth")


@lru_cache(maxsize=4)
def _dataset(name: str):
    from sklearn.datasets import load_breast_cancer, load_wine
    from sklearn.model_selection import train_test_split

    if name == "breast_cancer":
        x, y = load_breast_cancer(return_X_y=True, as_frame=True)
    else:
        x, y = load_wine(return_X_y=True, as_frame=True)
        y = (y == 0).astype(int)
    x.columns = [str(c).replace(" ", "_").replace("/", "_") for c in x.columns]
    return train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
