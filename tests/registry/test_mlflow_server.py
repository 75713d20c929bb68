"""Against a real ``mlflow server`` process: the HTTP client path end to end."""

from __future__ import annotations

import os
import socket
import uuid

import pytest
from mlflow import MlflowClient

from apps.registry.client import SCORE_BASELINE_PATH, RegistryClient
from apps.registry.demo_seed import seed_demo_models
from apps.registry.models import AliasUpdateState, ModelVersion
from apps.registry.selectors import model_card, sync_status
from apps.registry.services import registry_alias_apply, registry_alias_assign, registry_sync

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def test_sync_alias_and_outage_against_a_real_server(mlflow_server):
    seeded = seed_demo_models(mlflow_server.url, {"churn-model": 2})
    client = RegistryClient(tracking_uri=mlflow_server.url, timeout=10)

    result = registry_sync(client=client)

    assert result.ok, (result, mlflow_server.log())
    assert result.versions_created == ["churn-model v1", "churn-model v2"]
    v2 = ModelVersion.objects.get(name="churn-model", version=2)
    assert v2.source.startswith("models:/m-")  # an MLflow 3 logged model, over HTTP
    assert v2.run_metrics == pytest.approx(seeded[1].metrics)
    assert v2.run_params == seeded[1].params
    assert len(v2.signature["inputs"]) == 30  # MLmodel fetched through the server's proxy
    assert sum(v2.score_baseline["counts"]) == 171
    assert v2.details_note == ""

    again = RegistryClient(tracking_uri=mlflow_server.url)
    assert registry_sync(client=again).models_unchanged == 1
    assert dict(again.calls_by_method) == {"search_registered_models": 1}

    update = registry_alias_assign(
        model_version=v2, alias="prod", release_uid=str(uuid.uuid4()), actor_label="deployer"
    )
    update = registry_alias_apply(
        alias_update_id=update.pk, client=RegistryClient(tracking_uri=mlflow_server.url)
    )
    assert update.state == AliasUpdateState.DONE
    upstream = client._client().get_model_version_by_alias("churn-model", "prod")
    assert upstream.version == "2"
    assert upstream.tags["slipway.release_id"] == str(update.release_uid)

    card = model_card(v2, compare_to=ModelVersion.objects.get(name="churn-model", version=1))
    assert {row.name for row in card.metrics} >= {"accuracy", "log_loss"}

    # MLflow goes away: the data stays, the failure is recorded, the page says stale.
    mlflow_server.stop()
    down = registry_sync(client=RegistryClient(tracking_uri=mlflow_server.url, timeout=2))
    assert not down.ok and "refused the connection" in down.error
    assert ModelVersion.objects.filter(name="churn-model", deleted_upstream_at=None).count() == 2
    assert sync_status("churn-model").is_stale


MLMODEL = """\
artifact_path: model
flavors:
  python_function:
    loader_module: mlflow.sklearn
signature:
  inputs: '[{"type": "double", "name": "x", "required": true}]'
  outputs: '[{"type": "double", "required": true}]'
"""


def _register(mlflow, experiment_id: str, name: str, versions: int) -> None:
    """Versions registered fast (no training): a run with a metric, a baseline and an
    MLmodel, like the bench's."""
    mlflow.create_registered_model(name)
    for v in range(versions):
        run_id = mlflow.create_run(experiment_id).info.run_id
        mlflow.log_metric(run_id, "accuracy", 0.8 + v / 100)
        mlflow.log_dict(run_id, {"le": [0.5, 1.0], "counts": [3, 4]}, SCORE_BASELINE_PATH)
        mlflow.log_text(run_id, MLMODEL, "model/MLmodel")
        mlflow.create_model_version(name, source=f"runs:/{run_id}/model", run_id=run_id)


def _connections_to(port: int) -> dict[int, bool]:
    """This process's open TCP connections to ``port``: {local port: TCP_NODELAY set}.
    Read off the live sockets (Linux /proc), not out of MLflow's session cache."""
    found: dict[int, bool] = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            sock = socket.socket(fileno=os.dup(int(name)))
        except (ValueError, OSError):
            continue
        with sock:
            if sock.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            if sock.type != socket.SOCK_STREAM:
                continue
            try:
                peer = sock.getpeername()
            except OSError:
                continue
            if peer[1] == port:
                nodelay = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
                found[sock.getsockname()[1]] = bool(nodelay)
    return found


def test_first_sync_calls_grow_with_models_and_sockets_have_nodelay(mlflow_server, monkeypatch):
    from mlflow.utils import request_utils
    from urllib3.connection import HTTPConnection

    from apps.registry.services import sync

    mlflow = MlflowClient(tracking_uri=mlflow_server.url, registry_uri=mlflow_server.url)
    experiment_id = mlflow.create_experiment("calls-per-sync")
    _register(mlflow, experiment_id, "small-model", 2)
    _register(mlflow, experiment_id, "big-model", 6)
    monkeypatch.setattr(sync, "ARTIFACT_READS_PER_MODEL", 1)
    # Something in the process dropped urllib3's TCP_NODELAY default, and MLflow's cached
    # sessions are made afresh: the client must put the option back before it connects.
    monkeypatch.setattr(HTTPConnection, "default_socket_options", [])
    request_utils._cached_get_request_session.cache_clear()
    port = int(mlflow_server.url.rsplit(":", 1)[1])

    client = RegistryClient(tracking_uri=mlflow_server.url, timeout=20)
    try:
        result = registry_sync(client=client)
        connections = _connections_to(port)
    finally:
        request_utils._cached_get_request_session.cache_clear()

    assert result.ok, (result, mlflow_server.log())
    assert len(result.versions_created) == 8 and result.details_read == 8
    # Counted, not timed: one run search per model whatever its versions (6 or 2), the
    # experiments once, artifacts (baseline + MLmodel) for one version per model.
    assert dict(client.calls_by_method) == {
        "search_registered_models": 1,
        "search_model_versions": 2,
        "search_experiments": 1,
        "search_runs": 2,
        "download_artifacts": 2,
        "download_mlmodel": 2,
    }
    big = ModelVersion.objects.get(name="big-model", version=6)
    assert big.run_metrics == {"accuracy": pytest.approx(0.85)}
    assert big.signature["inputs"][0]["name"] == "x" and big.score_baseline["counts"] == [3, 4]
    # The kept-alive connections MLflow used carry TCP_NODELAY (no Nagle + delayed-ACK
    # stall on a request whose body goes out in a second write).
    assert connections and all(connections.values()), connections
