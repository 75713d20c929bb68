"""The MLflow client wrapper: bounded, counting, paging, and honest about failures."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from apps.registry.client import (
    RegistryClient,
    RegistryNotFound,
    RegistryRejected,
    RegistryUnavailable,
    parse_signature,
)


def test_pages_through_all_registered_models(mlflow_store):
    client = mlflow_store.registry_client(models_page_size=1)
    names = sorted(m.name for m in client.list_registered_models())
    assert names == ["churn-model", "fraud-detector"]
    assert client.calls_by_method["search_registered_models"] >= 2
    assert client.calls == sum(client.calls_by_method.values())


def test_pages_through_all_versions(mlflow_store):
    client = mlflow_store.registry_client(versions_page_size=1)
    versions = client.list_model_versions("churn-model")
    assert sorted(v.version for v in versions) == [1, 2, 3]
    assert client.calls_by_method["search_model_versions"] >= 3


def test_reads_signature_and_baseline(mlflow_store):
    client = mlflow_store.registry_client()
    v1 = next(v for v in client.list_model_versions("churn-model") if v.version == 1)
    signature = client.read_model_signature(v1.name, v1.version, v1.source)
    assert [f["name"] for f in signature["inputs"]][:2] == ["mean_radius", "mean_texture"]
    run = client.get_run(v1.run_id)
    baseline = client.read_run_json(run, "slipway/score_baseline.json")
    assert len(baseline["le"]) == len(baseline["counts"]) == 10
    with pytest.raises(RegistryNotFound):
        client.read_run_json(run, "slipway/nothing-here.json")


def test_reads_signature_of_a_runs_source(mlflow_store):
    """A version registered from ``runs:/<run>/model`` (MLflow 2 style)."""
    mlflow = mlflow_store.mlflow()
    run = mlflow.create_run(mlflow.get_experiment_by_name("slipway-demo").experiment_id)
    mlmodel = (
        'flavors: {}\nsignature:\n  inputs: \'[{"type": "long", "name": "age"}]\'\n'
        '  outputs: \'[{"type": "double"}]\'\n'
    )
    mlflow.log_text(run.info.run_id, mlmodel, "model/MLmodel")
    client = mlflow_store.registry_client()
    info = client.get_run(run.info.run_id)

    signature = client.read_model_signature("m", 1, f"runs:/{run.info.run_id}/model", run=info)

    assert signature["inputs"] == [{"type": "long", "name": "age"}]
    assert client.calls_by_method["download_mlmodel"] == 1
    with pytest.raises(RegistryNotFound):
        client.read_model_signature("m", 1, f"runs:/{run.info.run_id}/elsewhere", run=info)


def test_missing_things_are_not_found_not_unavailable(mlflow_store):
    client = mlflow_store.registry_client()
    with pytest.raises(RegistryNotFound):
        client.get_registered_model("no-such-model")
    with pytest.raises(RegistryNotFound):
        client.get_run("0" * 32)


def test_invalid_alias_is_rejected(mlflow_store):
    with pytest.raises(RegistryRejected):
        mlflow_store.registry_client().set_alias("churn-model", "latest", 1)


def test_refused_connection_fails_fast(unreachable_mlflow_uri):
    client = RegistryClient(tracking_uri=unreachable_mlflow_uri, timeout=5)
    started = time.monotonic()
    with pytest.raises(RegistryUnavailable, match="refused the connection"):
        client.list_registered_models()
    assert time.monotonic() - started < 3  # no MLflow retries with backoff
    assert client.calls == 1


def test_silent_server_times_out(silent_port):
    client = RegistryClient(tracking_uri=f"http://127.0.0.1:{silent_port}", timeout=1)
    started = time.monotonic()
    with pytest.raises(RegistryUnavailable, match="did not answer within 1 s"):
        client.list_registered_models()
    assert time.monotonic() - started < 5


def test_budget_caps_the_whole_client(silent_port):
    client = RegistryClient(
        tracking_uri=f"http://127.0.0.1:{silent_port}", timeout=30, budget_seconds=1
    )
    started = time.monotonic()
    with pytest.raises(RegistryUnavailable):
        client.list_registered_models()
    with pytest.raises(RegistryUnavailable, match="time allowed"):
        client.get_registered_model("churn-model")
    assert time.monotonic() - started < 5


def test_html_instead_of_mlflow(http_double):
    server = http_double(200, b"<html>Please sign in to the proxy</html>")
    with pytest.raises(RegistryUnavailable, match="not the MLflow API"):
        RegistryClient(tracking_uri=server.url).list_registered_models()


def test_json_of_the_wrong_shape(http_double):
    server = http_double(
        200, b'{"registered_models": [{"name": 5}]}', {"Content-Type": "application/json"}
    )
    with pytest.raises(RegistryUnavailable, match="not the MLflow API"):
        RegistryClient(tracking_uri=server.url).list_registered_models()


def test_503_with_retry_after_is_not_waited_for(http_double):
    server = http_double(503, b"maintenance", {"Retry-After": "3600"})
    started = time.monotonic()
    with pytest.raises(RegistryUnavailable):
        RegistryClient(tracking_uri=server.url).list_registered_models()
    assert time.monotonic() - started < 5
    assert len(server.seen) == 1


def test_mlflow_settings_apply_only_during_calls(mlflow_store, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "77")
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    client = mlflow_store.registry_client(timeout=3)

    inside = client._call(
        "probe",
        lambda: (
            os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"],
            os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"],
        ),
    )

    assert inside == ("3", "0")
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "77"
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ


def test_token_from_a_file_is_sent_and_not_left_behind(http_double, tmp_path, monkeypatch):
    server = http_double(200, b'{"registered_models": []}', {"Content-Type": "application/json"})
    token_file = tmp_path / "token"
    token_file.write_text("tok-123\n")
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN_FILE", str(token_file))

    assert RegistryClient(tracking_uri=server.url).list_registered_models() == []

    assert server.seen[0]["headers"]["Authorization"] == "Bearer tok-123"
    assert "MLFLOW_TRACKING_TOKEN" not in os.environ


def test_credentials_in_the_uri_never_reach_messages(unreachable_mlflow_uri):
    uri = unreachable_mlflow_uri.replace("http://", "http://alice:s3cret@")
    client = RegistryClient(tracking_uri=uri)
    assert "s3cret" not in client.display_uri
    with pytest.raises(RegistryUnavailable) as caught:
        client.list_registered_models()
    assert "s3cret" not in caught.value.message


def test_missing_sqlite_store_is_unavailable_and_not_created(tmp_path):
    path = tmp_path / "nowhere" / "mlflow.db"
    with pytest.raises(RegistryUnavailable, match="no MLflow database"):
        RegistryClient(tracking_uri=f"sqlite:///{path}").list_registered_models()
    assert not Path(path).exists() and not path.parent.exists()


def test_parse_signature_of_an_mlmodel():
    mlmodel = {
        "signature": {
            "inputs": '[{"type": "double", "name": "x", "required": true}]',
            "outputs": '[{"type": "double", "required": true}]',
        }
    }
    assert parse_signature(mlmodel) == {
        "inputs": [{"type": "double", "name": "x", "required": True}],
        "outputs": [{"type": "double", "required": True}],
    }
    assert parse_signature({"flavors": {}}) is None
    with pytest.raises(RegistryRejected):
        parse_signature({"signature": {"inputs": "not json"}})
