"""Benchmark: the first sync of 1,000 model versions (50 models x 20) from a real
``mlflow server``, next to the per-version reads the sync used to make.

    .venv/bin/python -m bench.registry_sync [--models 50] [--versions 20]
                                            [--baseline get_run|full|none]
                                            [--tracking-uri URI] [--sqlite]
                                            [--database-url URL]

By default the bench starts its own ``mlflow server`` (uvicorn, one worker, a sqlite
store, proxied artifacts under ``--artifacts-destination``) in a temporary directory,
after writing the versions straight into that store and artifact folder (registering
1,000 versions over HTTP would take minutes of the bench's time and measure nothing of
Slipway). Each version has its own run with metrics, params, the score-baseline artifact
and an MLmodel file with a signature, so a sync reads what it reads for a real model.
``--tracking-uri`` points the bench at a server of yours instead (it registers its
models there over HTTP, under ``bench-`` names); ``--sqlite`` syncs from a ``sqlite:///``
store with no server. ``--database-url`` takes another Slipway database (disposable: it is
migrated and written to); by default Slipway's side is a SQLite file.

Printed per phase: MLflow calls (one per client method call), the HTTP requests the
server logged (an artifact download through the proxy is two: a listing and the file),
database queries and wall time. Phases: the first sync; the syncs that follow until every
version's artifacts are read (the beat runs one a minute); an unchanged re-sync; a
re-sync after one new version. The baseline, in the same run against the same server:
what the old per-version path asked for each version, ``get_run`` alone (``get_run``,
default) or ``get_run`` plus both artifact downloads (``full``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

MLMODEL = """\
artifact_path: model
flavors:
  python_function:
    loader_module: mlflow.sklearn
    model_path: model.pkl
    python_version: 3.11.7
mlflow_version: 3.17.2
signature:
  inputs: '[{"type": "double", "name": "tenure_months", "required": true}, {"type":
    "double", "name": "monthly_charges", "required": true}, {"type": "string", "name":
    "contract", "required": true}]'
  outputs: '[{"type": "double", "required": true}]'
"""
BASELINE = json.dumps({"le": [round(0.1 * i, 1) for i in range(1, 11)], "counts": [10] * 10})


def _setup_django(workdir: Path, database_url: str | None) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "controlplane.settings"
    os.environ.setdefault("SECRET_KEY", "bench-only-not-a-secret")
    os.environ["SLIPWAY_VAR_DIR"] = str(workdir / "var")
    os.environ["DATABASE_URL"] = database_url or f"sqlite:///{workdir / 'slipway.sqlite3'}"
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("LOG_LEVEL", "WARNING")

    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def _register(tracking_uri: str, models: int, versions: int, prefix: str) -> list[str]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    artifact_location = None
    if tracking_uri.startswith("sqlite:///"):
        artifact_location = (
            Path(tracking_uri.removeprefix("sqlite:///")).parent / "artifacts"
        ).as_uri()
    experiment_id = client.create_experiment(
        f"{prefix}bench-{time.time_ns()}", artifact_location=artifact_location
    )
    names = []
    for m in range(models):
        name = f"{prefix}model-{m:03d}"
        client.create_registered_model(name)
        names.append(name)
        for v in range(versions):
            _add_version(client, experiment_id, name, v)
    return names


def _add_version(client, experiment_id: str, name: str, v: int) -> None:
    from mlflow.entities import Metric, Param

    run = client.create_run(experiment_id)
    run_id = run.info.run_id
    now = int(time.time() * 1000)
    client.log_batch(
        run_id,
        metrics=[
            Metric("accuracy", 0.8 + v / 1000, now, 0),
            Metric("log_loss", 0.3 - v / 1000, now, 0),
            Metric("predict_latency_ms", 5 + v % 7, now, 0),
        ],
        params=[Param("C", str(0.1 * (v + 1))), Param("max_iter", "500")],
    )
    client.log_dict(
        run_id,
        {"le": [0.1 * i for i in range(1, 11)], "counts": [10] * 10},
        "slipway/score_baseline.json",
    )
    client.log_text(run_id, MLMODEL, "model/MLmodel")
    client.create_model_version(name, source=f"runs:/{run_id}/model", run_id=run_id)


def _seed_for_server(root: Path, models: int, versions: int) -> list[str]:
    """Write the versions into a store the server will open: runs, metrics, params and
    versions through MLflow's own sqlite store, the artifacts as files where the server's
    proxy serves ``mlflow-artifacts:/bench/...`` from."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    uri = f"sqlite:///{root / 'server.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment_id = client.create_experiment("bench", artifact_location="mlflow-artifacts:/bench")
    names = []
    for m in range(models):
        name = f"model-{m:03d}"
        client.create_registered_model(name)
        names.append(name)
        for v in range(versions):
            run_id = client.create_run(experiment_id).info.run_id
            now = int(time.time() * 1000)
            client.log_batch(
                run_id,
                metrics=[
                    Metric("accuracy", 0.8 + v / 1000, now, 0),
                    Metric("log_loss", 0.3 - v / 1000, now, 0),
                    Metric("predict_latency_ms", 5 + v % 7, now, 0),
                ],
                params=[Param("C", str(0.1 * (v + 1))), Param("max_iter", "500")],
            )
            folder = root / "artifacts" / "bench" / run_id / "artifacts"
            (folder / "model").mkdir(parents=True)
            (folder / "model" / "MLmodel").write_text(MLMODEL)
            (folder / "slipway").mkdir()
            (folder / "slipway" / "score_baseline.json").write_text(BASELINE)
            client.create_model_version(
                name, source=f"runs:/{run_id}/model", run_id=run_id, await_creation_for=0
            )
    return names


def _start_server(root: Path) -> tuple[str, subprocess.Popen]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    command = [
        str(Path(sys.executable).parent / "mlflow"),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--backend-store-uri",
        f"sqlite:///{root / 'server.db'}",
        "--artifacts-destination",
        str(root / "artifacts"),
        "--workers",
        "1",
    ]
    with open(root / "server.log", "wb") as log:
        proc = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"mlflow server exited: {(root / 'server.log').read_text()[-2000:]}")
        try:
            # Our own http://127.0.0.1 URL.
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return url, proc
        except OSError:
            time.sleep(0.3)
    _stop_server(proc)
    raise SystemExit("mlflow server did not answer /health in 120 s")


def _stop_server(proc: subprocess.Popen) -> None:
    """The server and its uvicorn worker: the process group led by the PID we started."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


class _HttpLog:
    """Counts the requests the server logged (uvicorn's access log), when we own it."""

    def __init__(self, path: Path | None):
        self.path = path

    def count(self) -> int | None:
        if self.path is None:
            return None
        return self.path.read_text(errors="replace").count('HTTP/1.1" ')


def _measure(label: str, tracking_uri: str, http: _HttpLog, **sync_kwargs) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from apps.registry.client import RegistryClient
    from apps.registry.services import registry_sync

    client = RegistryClient(tracking_uri=tracking_uri)
    requests_before = http.count()
    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        result = registry_sync(client=client, **sync_kwargs)
        elapsed = time.perf_counter() - started
    if not result.ok:
        print(f"{label}: sync failed: {result.error or result.models_failed}", file=sys.stderr)
    after = http.count()
    return {
        "label": label,
        "ok": result.ok,
        "calls": client.calls,
        "http": None if after is None else after - requests_before,
        "by_method": dict(sorted(client.calls_by_method.items())),
        "queries": len(queries),
        "seconds": elapsed,
        "details": result.details_read,
        "artifacts": result.artifacts_read,
    }


def _drain(tracking_uri: str, http: _HttpLog) -> dict:
    """The syncs after the first, until no version owes its artifacts."""
    from apps.registry.models import ModelVersion

    row = {"label": "", "ok": True, "calls": 0, "http": 0, "queries": 0, "seconds": 0.0}
    row.update(details=0, artifacts=0, by_method={})
    syncs = 0
    while ModelVersion.objects.filter(artifacts_synced_at=None).exists() and syncs < 1000:
        step = _measure("drain", tracking_uri, http)
        syncs += 1
        for key in ("calls", "queries", "seconds", "details", "artifacts"):
            row[key] += step[key]
        row["http"] = None if step["http"] is None else row["http"] + step["http"]
        row["ok"] = row["ok"] and step["ok"]
        for method, n in step["by_method"].items():
            row["by_method"][method] = row["by_method"].get(method, 0) + n
    row["label"] = f"next {syncs} syncs (drain)"
    return row


def _baseline(tracking_uri: str, http: _HttpLog, mode: str) -> dict:
    """What the old sync asked MLflow for each version, one version at a time."""
    from apps.registry.client import SCORE_BASELINE_PATH, RegistryClient, RegistryNotFound
    from apps.registry.models import ModelVersion

    client = RegistryClient(tracking_uri=tracking_uri)
    rows = list(ModelVersion.objects.order_by("name", "-version"))
    requests_before = http.count()
    started = time.perf_counter()
    for mv in rows:
        run = client.get_run(mv.run_id)
        if mode == "full":
            with contextlib.suppress(RegistryNotFound):
                client.read_run_json(run, SCORE_BASELINE_PATH)
            client.read_model_signature(mv.name, mv.version, mv.source, run=run)
    elapsed = time.perf_counter() - started
    after = http.count()
    label = "old: get_run per version" if mode == "get_run" else "old: 3 reads per version"
    return {
        "label": label,
        "ok": True,
        "calls": client.calls,
        "http": None if after is None else after - requests_before,
        "by_method": dict(sorted(client.calls_by_method.items())),
        "queries": 0,
        "seconds": elapsed,
        "details": len(rows),
        "artifacts": len(rows) if mode == "full" else 0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--versions", type=int, default=20)
    parser.add_argument("--baseline", choices=("get_run", "full", "none"), default="get_run")
    parser.add_argument("--tracking-uri", default="")
    parser.add_argument("--sqlite", action="store_true", help="no server: a sqlite:/// store")
    parser.add_argument("--database-url", default="")
    args = parser.parse_args(argv)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

    with tempfile.TemporaryDirectory(prefix="slipway-bench-") as tmp:
        workdir = Path(tmp)
        _setup_django(workdir, args.database_url or None)
        root = workdir / "mlflow"
        root.mkdir()
        server = None
        http = _HttpLog(None)
        total = args.models * args.versions
        started = time.perf_counter()
        if args.tracking_uri or args.sqlite:
            tracking_uri = args.tracking_uri or f"sqlite:///{root / 'mlflow.db'}"
            names = _register(
                tracking_uri, args.models, args.versions, "bench-" if args.tracking_uri else ""
            )
        else:
            names = _seed_for_server(root, args.models, args.versions)
        print(
            f"registered {total} versions ({args.models} models x {args.versions}) "
            f"in {time.perf_counter() - started:.1f} s"
        )
        try:
            if not (args.tracking_uri or args.sqlite):
                tracking_uri, server = _start_server(root)
                http = _HttpLog(root / "server.log")
                print(f"mlflow server (uvicorn, 1 worker) at {tracking_uri}")
            rows = [_measure("first sync", tracking_uri, http)]
            rows.append(_drain(tracking_uri, http))
            rows.append(_measure("unchanged re-sync", tracking_uri, http))
            from mlflow import MlflowClient

            client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
            experiment_id = client.get_run(
                client.search_model_versions(f"name = '{names[0]}'")[0].run_id
            ).info.experiment_id
            _add_version(client, experiment_id, names[0], args.versions)
            rows.append(_measure("re-sync, 1 new version", tracking_uri, http))
            if args.baseline != "none":
                rows.append(_baseline(tracking_uri, http, args.baseline))
        finally:
            if server is not None:
                _stop_server(server)

        print()
        print(
            f"{'phase':<28}{'MLflow calls':>13}{'HTTP reqs':>11}{'DB queries':>12}"
            f"{'seconds':>10}{'runs read':>11}{'artifacts':>11}"
        )
        for row in rows:
            http_count = "-" if row["http"] is None else row["http"]
            print(
                f"{row['label']:<28}{row['calls']:>13}{http_count:>11}{row['queries']:>12}"
                f"{row['seconds']:>10.2f}{row['details']:>11}{row['artifacts']:>11}"
            )
        print()
        for row in rows:
            print(f"{row['label']}: {row['by_method']}")
        first = rows[0]
        print(
            f"\nfirst sync of {total} versions: {first['seconds']:.1f} s "
            f"(goal <= 30 s), {first['calls']} MLflow calls"
        )
        return 0 if all(row["ok"] for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
