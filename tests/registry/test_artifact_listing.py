"""Listing a model version's artifact files through MLflow, and checking their layout."""

from __future__ import annotations

import pytest

from apps.gitops.artifacts import layout_problems
from apps.gitops.runtimes import Runtime
from apps.registry.client import RegistryRejected


def seeded_version(mlflow_store, name="churn-model", version=1):
    client = mlflow_store.registry_client()
    mv = client.get_model_version(name, version)
    return client, mv


def test_lists_the_files_of_a_logged_model(mlflow_store):
    client, mv = seeded_version(mlflow_store)
    files = client.list_artifact_files(mv.name, mv.version, mv.source)
    # What mlflow.sklearn writes for the demo models: the MLmodel, the skops-serialised
    # model and its environment files.
    assert {"MLmodel", "model.skops", "requirements.txt"} <= set(files)
    assert files == sorted(files)
    assert all(not f.startswith("/") for f in files)
    assert client.calls_by_method["list_artifacts"] >= 2


def test_an_mlflow_model_fits_the_mlflow_servers_but_not_the_bare_sklearn_one(mlflow_store):
    client, mv = seeded_version(mlflow_store)
    files = client.list_artifact_files(mv.name, mv.version, mv.source)
    assert layout_problems(Runtime.KSERVE_MLFLOW, files) == []
    assert layout_problems(Runtime.SELDON, files) == []
    # KServe's sklearn server reads one .joblib/.pkl/.pickle; skops is not among them.
    problems = layout_problems(Runtime.KSERVE_SKLEARN, files)
    assert any("No .joblib/.pkl/.pickle" in p for p in problems)
    assert any("kserve-mlflow" in p for p in problems)
    problems = layout_problems(Runtime.KSERVE_PYTORCH, files)
    assert any("config/config.properties" in p for p in problems)


def test_models_uri_source_is_resolved_by_the_client(mlflow_store):
    client, mv = seeded_version(mlflow_store)
    files = client.list_artifact_files(mv.name, mv.version, f"models:/{mv.name}/{mv.version}")
    assert "MLmodel" in files


def test_listing_is_bounded(mlflow_store):
    client, mv = seeded_version(mlflow_store)
    with pytest.raises(RegistryRejected, match="more than 1 artifact files"):
        client.list_artifact_files(mv.name, mv.version, mv.source, max_files=1)
