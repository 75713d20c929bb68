"""Benchmark: one metrics poll cycle for 1,000 services against a real Prometheus.

    .venv/bin/python -m bench.metrics_poll [--services 100,1000] [--database-url URL]
                                           [--sqlite] [--no-cost] [--polls 3]

For each fleet size it prints the HTTP requests each source sent (Prometheus queries,
Kubernetes pod lists), the database queries, the wall time of a poll and how many sample
rows per second it wrote. The point: requests stay flat as services grow.

Everything is throwaway: Prometheus (the Debian package) gets backfilled data for every
service (``promtool tsdb create-blocks-from openmetrics``, 10 minutes at 30 s steps:
request counters, a latency histogram and a prediction-score histogram per service) and
runs in a temporary directory; the cost source reads pods from the Kubernetes API double
the tests use (``tests.fixtures.kube``, over HTTP), one pod per service. The Slipway
database is a fresh PostgreSQL database created on 127.0.0.1:5432 and dropped afterwards
(``--sqlite`` for a SQLite file instead, ``--database-url`` for one you give, which must
be disposable). Services, versions and live releases are bulk-inserted (not rendered:
the poll only reads them).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

T_END = 1714564800  # 2024-05-01T12:00:00Z
STEP = 30
TIMES = [T_END - 10 * 60 + i * STEP for i in range(10 * 60 // STEP + 1)]
SCORE_BOUNDS = [round(0.1 * i, 1) for i in range(1, 11)]


def _name(i: int) -> str:
    return f"svc-{i:04d}"


def build_openmetrics(services: int) -> str:
    from tests.fixtures.prometheus import OpenMetrics

    om = OpenMetrics()
    for i in range(services):
        labels = {"service": _name(i), "environment": "prod"}
        ok, failed = 100 + i % 50, i % 7
        om.counter(
            "slipway_requests",
            {**labels, "code": "200"},
            [(t, ok * n) for n, t in enumerate(TIMES)],
        )
        om.counter(
            "slipway_requests",
            {**labels, "code": "500"},
            [(t, failed * n) for n, t in enumerate(TIMES)],
        )
    for i in range(services):
        slow = i % 5
        om.histogram(
            "slipway_request_duration_seconds",
            {"service": _name(i), "environment": "prod"},
            TIMES,
            {0.05: 50, 0.1: 80, 0.25: 95 - slow, 0.5: 99, 1.0: 100, math.inf: 100},
        )
    for i in range(services):
        running, cumulative = 0, {}
        for b, bound in enumerate(SCORE_BOUNDS):
            running += 10 + (b * i) % 7
            cumulative[bound] = running
        cumulative[math.inf] = running
        om.histogram(
            "slipway_prediction_score",
            {"service": _name(i), "environment": "prod"},
            TIMES,
            cumulative,
        )
    return om.text()


def _setup_django(workdir: Path, database_url: str) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "controlplane.settings"
    os.environ.setdefault("SECRET_KEY", "bench-only-not-a-secret")
    os.environ["SLIPWAY_VAR_DIR"] = str(workdir / "var")
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("LOG_LEVEL", "ERROR")

    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def _create_fleet(first: int, last: int, live_at: datetime) -> None:
    """Services first..last-1, each with a version (score baseline) live in prod."""
    from apps.registry.models import ModelVersion
    from apps.releases.models import (
        Environment,
        Release,
        ReleaseState,
        Service,
        ServiceEnvironment,
    )

    prod, _ = Environment.objects.get_or_create(name="prod", defaults={"order": 1})
    config = {"replicas": {"min": 2, "max": 4}, "resources": {"cpu": "500m", "memory": "1Gi"}}
    services = Service.objects.bulk_create(
        Service(
            name=_name(i),
            owner_team="bench",
            registered_model=_name(i),
            runtime="custom",
            default_config=config,
            # Generous: the steady-state polls judge every SLO and breach none (the
            # --breach phase shows the cost of a poll in which every service breaches).
            slo_p95_latency_ms=1000.0,
            slo_error_rate=0.1,
            slo_drift_psi=1.0,
        )
        for i in range(first, last)
    )
    versions = ModelVersion.objects.bulk_create(
        ModelVersion(
            name=_name(i),
            version=1,
            score_baseline={"le": SCORE_BOUNDS, "counts": [100] * 10},
        )
        for i in range(first, last)
    )
    ServiceEnvironment.objects.bulk_create(
        ServiceEnvironment(service=service, environment=prod) for service in services
    )
    Release.objects.bulk_create(
        Release(
            uid=uuid.uuid4(),
            service=service,
            environment=prod,
            model_version=version,
            config=config,
            rendered_files={},
            digest="0" * 64,
            state=ReleaseState.LIVE,
            live_at=live_at,
            requested_by_system="bench",
        )
        for service, version in zip(services, versions, strict=True)
    )


def _add_pods(kube, first: int, last: int) -> None:
    for i in range(first, last):
        kube.add_pod(
            "prod",
            f"{_name(i)}-0",
            labels={
                "app.kubernetes.io/instance": f"{_name(i)}-prod",
                "app.kubernetes.io/managed-by": "slipway",
            },
            requests={"cpu": "500m", "memory": "1Gi"},
        )


def _poll(at: datetime):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from apps.metrics.services import metrics_poll

    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        result = metrics_poll(now=at)
        seconds = time.perf_counter() - started
    return result, seconds, len(queries.captured_queries)


def _temporary_postgres() -> tuple[str, str] | None:
    try:
        import psycopg

        admin = os.environ.get("TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
        name = f"slipway_bench_metrics_{os.getpid()}"
        with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return admin, admin.rsplit("/", 1)[0] + f"/{name}"
    except Exception as exc:  # no PostgreSQL here: say so and use SQLite
        print(f"(PostgreSQL not available: {type(exc).__name__}; using SQLite)")
        return None


def _drop_postgres(admin: str, url: str) -> None:
    import psycopg
    from django.db import connections

    connections.close_all()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}"')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--services", default="100,1000", help="fleet sizes, ascending")
    parser.add_argument("--polls", type=int, default=3, help="polls per fleet size")
    parser.add_argument("--database-url", default="")
    parser.add_argument("--sqlite", action="store_true")
    parser.add_argument("--no-cost", action="store_true", help="skip the Kubernetes cost source")
    parser.add_argument(
        "--no-breach", action="store_true", help="skip the poll where every service breaches"
    )
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.services.split(","))

    workdir = Path(tempfile.mkdtemp(prefix="slipway-bench-metrics-"))
    temporary = None
    if args.database_url:
        database_url = args.database_url
    elif not args.sqlite and (temporary := _temporary_postgres()):
        database_url = temporary[1]
    else:
        database_url = f"sqlite:///{workdir / 'slipway.sqlite3'}"
    _setup_django(workdir, database_url)

    from django.conf import settings
    from django.db import connection

    from tests.fixtures.prometheus import PrometheusProcess

    print(f"database: {connection.vendor}; building Prometheus data for {sizes[-1]} services")
    started = time.perf_counter()
    text = build_openmetrics(sizes[-1])
    prometheus = PrometheusProcess(workdir / "prometheus", openmetrics=text)
    print(
        f"backfilled {len(text.splitlines()):,} OpenMetrics lines and started Prometheus in "
        f"{time.perf_counter() - started:.1f} s"
    )
    kube = None
    if not args.no_cost:
        from tests.fixtures.kube import KubeApiDouble

        kube = KubeApiDouble()
    settings.METRICS_BACKEND = "prometheus"
    settings.PROMETHEUS_URL = prometheus.url
    settings.METRICS_REQUEST_WINDOW = "5m"
    settings.METRICS_DRIFT_WINDOW = "10m"
    settings.METRICS_COST_BACKEND = "kubernetes" if kube else ""
    if kube:
        settings.KUBE_API_URL = kube.url
        settings.KUBE_TOKEN = "bench"  # noqa: S105 - the double checks no token

    at = datetime.fromtimestamp(T_END, tz=UTC)
    rows, breach = [], None
    try:
        created = 0
        for size in sizes:
            _create_fleet(created, size, live_at=at - timedelta(hours=1))
            if kube:
                _add_pods(kube, created, size)
            created = size
            polls = []
            for n in range(args.polls):
                polls.append(_poll(at - timedelta(seconds=STEP * (args.polls - 1 - n))))
            for n, (result, seconds, queries) in enumerate(polls):
                by_source = {run.source: run for run in result.sources}
                source_seconds = sum(run.seconds for run in result.sources)
                rows.append(
                    {
                        "services": size,
                        "poll": n + 1,
                        "prometheus": by_source["prometheus"].requests,
                        "drift": by_source["drift"].requests,
                        "cost": by_source["cost"].requests if "cost" in by_source else 0,
                        "db_queries": queries,
                        "samples": result.samples_written,
                        "seconds": seconds,
                        "source_seconds": source_seconds,
                        "rows_per_s": result.samples_written / seconds,
                        "write_rows_per_s": result.samples_written
                        / max(seconds - source_seconds, 1e-9),
                        "failed": [r.source for r in result.sources if not r.ok],
                        "events": len(result.events),
                    }
                )
        if not args.no_breach:
            from apps.releases.models import Service

            # Every service over its p95 SLO: the K-th poll records a breach (an SloEvent
            # and an audit row, appended one by one to the hash chain) for each.
            Service.objects.update(slo_p95_latency_ms=1.0)
            for n in range(3):
                result, seconds, queries = _poll(at + timedelta(seconds=STEP * (n + 1)))
            by_source = {run.source: run for run in result.sources}
            breach = {
                "services": sizes[-1],
                "events": len(result.events),
                "db_queries": queries,
                "seconds": seconds,
                "source_seconds": sum(run.seconds for run in result.sources),
            }
    finally:
        prometheus.stop()
        if kube:
            kube.stop()
        if temporary:
            _drop_postgres(*temporary)

    header = (
        f"{'services':>8} {'poll':>4} {'prom q':>6} {'drift q':>7} {'k8s q':>5} "
        f"{'db q':>5} {'samples':>7} {'poll s':>7} {'sources s':>9} {'rows/s':>8} "
        f"{'db rows/s':>9}"
    )
    print(header)
    for r in rows:
        print(
            f"{r['services']:>8} {r['poll']:>4} {r['prometheus']:>6} {r['drift']:>7} "
            f"{r['cost']:>5} {r['db_queries']:>5} {r['samples']:>7} {r['seconds']:>7.2f} "
            f"{r['source_seconds']:>9.2f} {r['rows_per_s']:>8.0f} {r['write_rows_per_s']:>9.0f}"
            + (f"  FAILED: {', '.join(r['failed'])}" if r["failed"] else "")
        )
    if breach:
        print(
            f"breach poll, {breach['services']} services: {breach['events']} breach events, "
            f"{breach['db_queries']} db queries, {breach['seconds']:.2f} s "
            f"({breach['source_seconds']:.2f} s in sources)"
        )
    for size in sizes:
        steady = [r["seconds"] for r in rows if r["services"] == size and r["poll"] > 1]
        if steady:
            print(f"{size} services: median steady poll {statistics.median(steady):.2f} s")
    return 1 if any(r["failed"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
