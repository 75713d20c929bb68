"""Benchmark: syncing a registry of 1,000 model versions (50 models x 20 versions).

    .venv/bin/python -m bench.registry_sync [--models 50] [--versions 20]
                                            [--tracking-uri URI] [--database-url URL]

Prints, for the first sync, an unchanged re-sync and a re-sync after one new version:
the MLflow calls made (by method), database queries and wall time.

By default everything is throwaway, in a temporary directory: a ``sqlite:///`` MLflow
store and a SQLite Slipway database (migrated here). Versions are registered fast, not
trained: each has its own run with metrics, params and the score-baseline artifact, and
an MLmodel file with a signature under the run's ``model/`` folder, so the first sync
does the same reads per version as for a real model. ``--tracking-uri`` points the
bench at an MLflow server instead (it registers its models there, under ``bench-``
names, and syncs everything the server holds); ``--database-url`` at another Slipway
database (it must be disposable: it is migrated and written to).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
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


def _measure(label: str, **sync_kwargs):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from apps.registry.client import RegistryClient
    from apps.registry.services import registry_sync

    client = RegistryClient(tracking_uri=sync_kwargs.pop("tracking_uri"))
    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        result = registry_sync(client=client, **sync_kwargs)
        elapsed = time.perf_counter() - started
    if not result.ok:
        print(f"{label}: sync failed: {result.error or result.models_failed}", file=sys.stderr)
    return {
        "label": label,
        "ok": result.ok,
        "calls": client.calls,
        "by_method": dict(sorted(client.calls_by_method.items())),
        "queries": len(queries),
        "seconds": elapsed,
        "created": len(result.versions_created),
        "read": len(result.models_read),
        "unchanged": result.models_unchanged,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--versions", type=int, default=20)
    parser.add_argument("--tracking-uri", default="")
    parser.add_argument("--database-url", default="")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="slipway-bench-") as tmp:
        workdir = Path(tmp)
        _setup_django(workdir, args.database_url or None)
        tracking_uri = args.tracking_uri or f"sqlite:///{workdir / 'mlflow' / 'mlflow.db'}"
        prefix = "bench-" if args.tracking_uri else ""
        if not args.tracking_uri:
            (workdir / "mlflow").mkdir()

        started = time.perf_counter()
        names = _register(tracking_uri, args.models, args.versions, prefix)
        setup_seconds = time.perf_counter() - started
        total = args.models * args.versions
        print(
            f"registered {total} versions ({args.models} models x {args.versions}) "
            f"in {setup_seconds:.1f} s at {tracking_uri}"
        )

        rows = [
            _measure("first sync", tracking_uri=tracking_uri),
            _measure("unchanged re-sync", tracking_uri=tracking_uri),
        ]
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        experiment_id = client.get_run(
            client.search_model_versions(f"name = '{names[0]}'")[0].run_id
        ).info.experiment_id
        _add_version(client, experiment_id, names[0], args.versions)
        rows.append(_measure("re-sync, 1 new version", tracking_uri=tracking_uri))

        print()
        print(
            f"{'phase':<24}{'MLflow calls':>13}{'DB queries':>12}{'seconds':>10}"
            f"{'models re-read':>16}{'versions new':>14}"
        )
        for row in rows:
            print(
                f"{row['label']:<24}{row['calls']:>13}{row['queries']:>12}"
                f"{row['seconds']:>10.2f}{row['read']:>16}{row['created']:>14}"
            )
        print()
        for row in rows:
            print(f"{row['label']}: {row['by_method']}")
        return 0 if all(row["ok"] for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
