"""The demo seed trains real models and leaves what the sync and drift need."""

from __future__ import annotations

import json
import os

import pytest

from apps.registry.demo_seed import SCORE_BUCKETS
from apps.registry.services import validate_score_baseline


def test_seeded_versions_are_real_and_varied(mlflow_store):
    by_name: dict[str, list] = {}
    for seeded in mlflow_store.seeded:
        by_name.setdefault(seeded.name, []).append(seeded)
    assert {n: [v.version for v in vs] for n, vs in by_name.items()} == {
        "churn-model": [1, 2, 3],
        "fraud-detector": [1, 2],
    }
    for versions in by_name.values():
        assert len({tuple(sorted(v.params.items())) for v in versions}) == len(versions)
        for v in versions:
            assert 0.5 < v.metrics["accuracy"] <= 1.0
            assert 0.0 <= v.metrics["log_loss"] < 1.0


def test_score_baseline_artifact_format(mlflow_store):
    client = mlflow_store.mlflow()
    for seeded in mlflow_store.seeded:
        path = client.download_artifacts(
            seeded.run_id, "slipway/score_baseline.json", str(mlflow_store.path / seeded.run_id)
        )
        with open(path) as handle:
            baseline = validate_score_baseline(json.load(handle))
        assert baseline["le"] == SCORE_BUCKETS
        assert baseline["le"][-1] >= 1.0
        assert sum(baseline["counts"]) in {171, 54}  # test rows: breast cancer, wine


def test_seed_leaves_no_global_mlflow_state(mlflow_store):
    import mlflow

    assert "MLFLOW_TRACKING_URI" not in os.environ or os.environ["MLFLOW_TRACKING_URI"] != (
        mlflow_store.uri
    )
    assert mlflow.get_tracking_uri() != mlflow_store.uri


@pytest.mark.parametrize(
    "raw",
    [
        None,
        [],
        {"le": [], "counts": []},
        {"le": [0.5, 1.0], "counts": [1]},
        {"le": [1.0, 0.5], "counts": [1, 1]},
        {"le": [0.5, 1.0], "counts": [1, -1]},
        {"le": [0.5, 1.0], "counts": [0, 0]},
        {"le": ["a", 1.0], "counts": [1, 1]},
        {"le": [0.5, 1.0], "counts": [1.5, 1]},
    ],
)
def test_malformed_baselines_are_refused(raw):
    with pytest.raises(ValueError):
        validate_score_baseline(raw)
