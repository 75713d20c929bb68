"""Benchmark: one metrics poll cycle for 1,000 and 10,000 services against a real Prometheus.

    .venv/bin/python -m bench.metrics_poll [--services 1000,10000] [--database-url URL]
                                           [--sqlite] [--no-cost] [--polls 3]
                                           [--recording-rules]

For each fleet size it prints the HTTP requests each source sent (Prometheus queries,
Kubernetes pod lists), the database queries per poll, the wall time of a poll, and next
to them two baselines measured in the same run: the same HTTP reads with nothing done but
``json.loads`` (the floor any poll pays), and the same rows stored the previous way (a
model instance per row through ``bulk_create``). Then a poll in which every service
breaches, next to its audit rows appended one by one. Goals (issue 18): 1,000 services
<= 1 s, 10,000 <= 5 s, queries per poll constant in fleet size, breaches included.

``--recording-rules`` polls what a large fleet should run: the series
deploy/prometheus/slipway-recording-rules.yml records (METRICS_RECORDING_RULES), after
``promtool tsdb create-blocks-from rules`` has evaluated the rules over the data, as
Prometheus does between polls. Without it Prometheus evaluates the default templates
over every raw series inside the poll, on the same two cores as Slipway and PostgreSQL.

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
    from apps.accounts.models import Team
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
            owner_team=Team.objects.get_or_create(slug="bench")[0],
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
    """One timed poll (no query capture: Django's debug cursor would format every
    statement's parameters and slow the poll it measures)."""
    from apps.metrics.services import metrics_poll

    started, cpu = time.perf_counter(), time.process_time()
    result = metrics_poll(now=at)
    result.cpu_seconds = time.process_time() - cpu  # this process only (not Prometheus, PG)
    return result, time.perf_counter() - started


def _count_queries(function) -> int:
    """Statements sent while ``function`` runs, on every connection: the poll's, and the
    one its observations are written on (opened in a thread while it runs). Django's
    query log keeps only the last 9,000, so statements are counted as they go out; a
    COPY, sent on the driver's own cursor, is logged by the poll's writer and counted
    from the logs."""
    from django.db import connection
    from django.db.backends.signals import connection_created
    from django.test.utils import CaptureQueriesContext

    count, opened = 0, []

    def counting(execute, sql, params, many, context):
        nonlocal count
        count += 1
        return execute(sql, params, many, context)

    def watch(sender, connection, **kwargs):
        connection.execute_wrappers.append(counting)
        connection.force_debug_cursor = True  # so its COPY is logged too
        opened.append(connection)

    connection_created.connect(watch)
    try:
        with CaptureQueriesContext(connection) as log, connection.execute_wrapper(counting):
            function()
    finally:
        connection_created.disconnect(watch)
    logs = [log.captured_queries, *(other.queries_log for other in opened)]
    return count + sum(1 for entries in logs for q in entries if q["sql"].startswith("COPY"))


class _Recorder:
    """Wraps the sources' Prometheus client to note each query it sends, so the raw
    baseline can send exactly the same ones."""

    def __init__(self):
        self.queries: list[str] = []

    def install(self):
        from apps.metrics.sources.promapi import PrometheusClient

        original, queries = PrometheusClient.query, self.queries

        def query(client, promql, *, at=None):
            queries.append(promql)
            return original(client, promql, at=at)

        PrometheusClient.query = query
        return lambda: setattr(PrometheusClient, "query", original)


def _raw_reads(prometheus_url: str, kube_url: str | None, queries: list[str], at: datetime):
    """Baseline: the same HTTP requests the sources send, each body only json.loads'ed.
    What any poll pays before it does anything with the numbers."""
    import json

    import requests

    started = time.perf_counter()
    with requests.Session() as session:
        for promql in queries:
            body = session.post(
                f"{prometheus_url}/api/v1/query",
                data={"query": promql, "time": f"{at.timestamp():.3f}"},
                timeout=30,
            ).content
            json.loads(body)
        if kube_url:
            body = session.get(
                f"{kube_url}/api/v1/namespaces/prod/pods",
                params={"labelSelector": "app.kubernetes.io/managed-by=slipway"},
                timeout=30,
            ).content
            json.loads(body)
    return time.perf_counter() - started


def _orm_store_seconds(at: datetime, samples: int) -> float:
    """Baseline: the previous way of storing one poll's rows (a model instance per sample
    and per latest value through bulk_create), on the rows the last poll wrote, in a
    transaction rolled back afterwards."""
    from django.db import transaction

    from apps.metrics.models import MetricLatest, MetricSample

    rows = list(
        MetricSample.objects.filter(time=at)
        .order_by("-id")
        .values("service_id", "environment_id", "release_id", "metric", "time", "value")[:samples]
    )
    started = time.perf_counter()
    with transaction.atomic():
        MetricSample.objects.bulk_create([MetricSample(**r) for r in rows], batch_size=5000)
        MetricLatest.objects.bulk_create(
            [MetricLatest(**r) for r in rows],
            batch_size=5000,
            update_conflicts=True,
            unique_fields=["service", "environment", "metric"],
            update_fields=["release", "time", "value"],
        )
        seconds = time.perf_counter() - started
        transaction.set_rollback(True)
    return seconds


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
    parser.add_argument("--services", default="1000,10000", help="fleet sizes, ascending")
    parser.add_argument("--polls", type=int, default=3, help="polls per fleet size")
    parser.add_argument("--database-url", default="")
    parser.add_argument("--sqlite", action="store_true")
    parser.add_argument("--no-cost", action="store_true", help="skip the Kubernetes cost source")
    parser.add_argument(
        "--no-breach", action="store_true", help="skip the poll where every service breaches"
    )
    parser.add_argument(
        "--recording-rules",
        action="store_true",
        help="poll the series deploy/prometheus/slipway-recording-rules.yml records "
        "(METRICS_RECORDING_RULES), after promtool has evaluated the rules over the data",
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

    print(
        f"database: {connection.vendor}; PromQL: "
        f"{'recorded series (--recording-rules)' if args.recording_rules else 'default templates'}"
        f"; building Prometheus data for {sizes[-1]} services"
    )
    started = time.perf_counter()
    text = build_openmetrics(sizes[-1])
    prometheus = PrometheusProcess(workdir / "prometheus", openmetrics=text)
    print(
        f"backfilled {len(text.splitlines()):,} OpenMetrics lines and started Prometheus in "
        f"{time.perf_counter() - started:.1f} s"
    )
    if args.recording_rules:
        started = time.perf_counter()
        rules = (
            Path(__file__).resolve().parents[1] / "deploy/prometheus/slipway-recording-rules.yml"
        )
        prometheus.backfill_rules(rules, start=TIMES[0], end=T_END + 60)
        print(f"recorded the rules over the data in {time.perf_counter() - started:.1f} s")
    kube = None
    if not args.no_cost:
        from tests.fixtures.kube import KubeApiDouble

        kube = KubeApiDouble()
    settings.METRICS_BACKEND = "prometheus"
    settings.PROMETHEUS_URL = prometheus.url
    # A cold 10,000-service Prometheus on a busy machine can take longer than the 10 s
    # default to answer the first queries; the bench measures Slipway, not that timeout.
    settings.PROMETHEUS_TIMEOUT_SECONDS = 60
    settings.METRICS_REQUEST_WINDOW = "5m"
    settings.METRICS_DRIFT_WINDOW = "10m"
    if args.recording_rules:
        settings.METRICS_RECORDING_RULES = True
        settings.METRICS_DRIFT_WINDOW = "30m"  # the window the rules file records
    settings.METRICS_COST_BACKEND = "kubernetes" if kube else ""
    if kube:
        settings.KUBE_API_URL = kube.url
        settings.KUBE_TOKEN = "bench"  # noqa: S105 - the double checks no token

    at = datetime.fromtimestamp(T_END, tz=UTC)
    rows, baselines, breach = [], {}, None
    try:
        created = 0
        for size in sizes:
            _create_fleet(created, size, live_at=at - timedelta(hours=1))
            if kube:
                _add_pods(kube, created, size)
            created = size
            recorder = _Recorder()
            uninstall = recorder.install()
            try:
                _poll(at - timedelta(seconds=STEP * args.polls))  # untimed: creates SLO states
            finally:
                uninstall()
            polls = [
                _poll(at - timedelta(seconds=STEP * (args.polls - 1 - n)))
                for n in range(args.polls)
            ]
            raw = [
                _raw_reads(prometheus.url, kube.url if kube else None, recorder.queries, at)
                for _ in range(args.polls)
            ]
            orm = [_orm_store_seconds(at, polls[-1][0].samples_written) for _ in range(args.polls)]
            queries = _count_queries(lambda: _poll(at + timedelta(seconds=1)))
            baselines[size] = {"raw": statistics.median(raw), "orm_store": statistics.median(orm)}
            for n, (result, seconds) in enumerate(polls):
                by_source = {run.source: run for run in result.sources}
                source_seconds = result.read_seconds  # sources read at the same time
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
                        "cpu_seconds": result.cpu_seconds,
                        "failed": [r.source for r in result.sources if not r.ok],
                        "events": len(result.events),
                    }
                )
        if not args.no_breach:
            breach = _breach_phase(at, sizes[-1])
    finally:
        prometheus.stop()
        if kube:
            kube.stop()
        if temporary:
            _drop_postgres(*temporary)

    print(
        f"{'services':>8} {'poll':>4} {'prom q':>6} {'drift q':>7} {'k8s q':>5} "
        f"{'db q':>5} {'samples':>7} {'poll s':>7} {'reads s':>9} {'write+judge s':>13} "
        f"{'CPU s':>6}"
    )
    for r in rows:
        print(
            f"{r['services']:>8} {r['poll']:>4} {r['prometheus']:>6} {r['drift']:>7} "
            f"{r['cost']:>5} {r['db_queries']:>5} {r['samples']:>7} {r['seconds']:>7.2f} "
            f"{r['source_seconds']:>9.2f} {r['seconds'] - r['source_seconds']:>13.2f} "
            f"{r['cpu_seconds']:>6.2f}"
            + (f"  FAILED: {', '.join(r['failed'])}" if r["failed"] else "")
        )
    print()
    for size in sizes:
        mine = [r for r in rows if r["services"] == size]
        median = statistics.median(r["seconds"] for r in mine)
        cpu = statistics.median(r["cpu_seconds"] for r in mine)
        base = baselines[size]
        print(
            f"{size:>6} services: median poll {median:.2f} s ({cpu:.2f} s CPU in Slipway), "
            f"{mine[0]['db_queries']} db "
            f"queries per poll; baselines in this run: the same HTTP reads alone "
            f"(json.loads only) {base['raw']:.2f} s, the same rows stored the previous way "
            f"(a model instance each, bulk_create) {base['orm_store']:.2f} s"
        )
    if breach:
        print(
            f"all-breach poll, {breach['services']} services: {breach['events']} breach events, "
            f"{breach['db_queries']} db queries, {breach['seconds']:.2f} s "
            f"({breach['source_seconds']:.2f} s in sources); baseline in this run: the same "
            f"audit rows appended one by one (the previous way) "
            f"{breach['per_event_audit_seconds']:.2f} s, {breach['per_event_audit_queries']} "
            f"queries, against {breach['batch_audit_seconds']:.2f} s and "
            f"{breach['batch_audit_queries']} queries in one batch"
        )
    return 1 if any(r["failed"] for r in rows) else 0


def _breach_phase(at: datetime, services: int) -> dict:
    """Every service over its p95 SLO: the K-th poll records a breach (an SloEvent and
    an audit row) for each. Run twice (states reset in between): once timed, once with
    its queries counted."""
    from apps.metrics.models import SloState
    from apps.releases.models import Service

    Service.objects.update(slo_p95_latency_ms=1.0)
    out = {"services": services}
    for n in range(3):
        result, seconds = _poll(at + timedelta(seconds=STEP * (n + 1)))
    out.update(
        events=len(result.events),
        seconds=seconds,
        source_seconds=result.read_seconds,
    )
    SloState.objects.all().delete()
    for n in range(2):
        _poll(at + timedelta(seconds=STEP * (n + 4)))
    out["db_queries"] = _count_queries(lambda: _poll(at + timedelta(seconds=STEP * 6)))
    out.update(_audit_baseline(result.events))
    return out


def _audit_baseline(events) -> dict:
    """The breach poll's audit rows appended one ``audit_record`` each (the previous way)
    and in one ``audit_record_many``, each in a transaction rolled back afterwards."""
    from django.db import transaction

    from apps.audit.services import audit_record, audit_record_many, audited_atomic

    entries = [
        {
            "action": f"slo.{e.kind}",
            "target_type": "release",
            "target_id": e.release_id,
            "after": {"metric": e.metric, "value": e.value, "threshold": e.threshold},
        }
        for e in events
    ]

    def one_by_one():
        for entry in entries:
            audit_record(system_actor="metrics", **entry)

    def batch():
        audit_record_many(system_actor="metrics", events=entries)

    out = {}
    # Audited writes must open their transaction with the chain lock (audited_atomic),
    # as the poll's own transaction does.
    for name, function in (("per_event_audit", one_by_one), ("batch_audit", batch)):
        with audited_atomic():
            started = time.perf_counter()
            function()
            out[f"{name}_seconds"] = time.perf_counter() - started
            transaction.set_rollback(True)
        with audited_atomic():
            out[f"{name}_queries"] = _count_queries(function)
            transaction.set_rollback(True)
    return out


if __name__ == "__main__":
    sys.exit(main())
