"""Benchmark: what open live pages cost the web tier (issue #18 item 6).

    .venv/bin/python -m bench.live_pages [--pages 500] [--poll 5] [--seconds 20]
        [--workers 2] [--threads 4]

The web tier as deployed: gunicorn with deploy/gunicorn.conf.py (gthread, 2 workers x 4
threads by default), production settings, a throwaway PostgreSQL database with 4 services
live in 2 environments and an hour of metric samples each.

1. Live load: ``--pages`` open pages, half on the fleet and half on a service dashboard,
   each polling its fragment every ``--poll`` seconds, i.e. pages/poll requests per second
   sent open-loop at a steady rate, with ``If-None-Match`` as static/js/live.js sends it.
   Halfway through, a metrics poll lands (the newest sample time moves), so every page
   gets one fresh 200 as it would in production. Printed: requests answered, the 304
   share, latency p50/p95, and the share of the workers' CPU time they cost (CPU seconds
   of the worker processes over wall seconds x workers, from /proc).
   Baseline, same run: the same request rate for the full pages without conditional
   requests (what polling would cost without apps/core/live.py).
2. Throughput of the full fleet page at 1, 8 and 32 concurrent keep-alive connections
   (closed loop, ``--seconds`` each), and of the fleet fragment answered 304.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.support import drop_postgres, percentile, setup_django, temporary_postgres

ROOT = Path(__file__).resolve().parents[1]
METRICS = [
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "error_rate",
    "request_rate",
    "cost_per_day",
    "drift_psi",
]
TICKS = os.sysconf("SC_CLK_TCK")


def _seed():
    """4 services live in staging and prod, an hour of samples every 30 s each."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db import connection
    from django.test import Client
    from django.utils import timezone

    from apps.accounts.models import Team
    from apps.registry.models import ModelVersion
    from apps.releases.models import Environment, Release, Service, ServiceEnvironment

    envs = [Environment.objects.create(name=n, order=i) for i, n in enumerate(["staging", "prod"])]
    user = get_user_model().objects.create(username="otto")
    user.groups.add(Group.objects.get_or_create(name="oncall")[0])
    for i in range(4):
        service = Service.objects.create(
            name=f"svc-{i}",
            owner_team=Team.objects.get_or_create(slug="bench")[0],
            registered_model=f"svc-{i}",
            slo_p95_latency_ms=250,
            slo_error_rate=0.01,
        )
        version = ModelVersion.objects.create(name=service.name, version=1)
        for env in envs:
            ServiceEnvironment.objects.create(
                service=service, environment=env, sync_status="Synced", health_status="Healthy"
            )
            Release.objects.create(
                uid=uuid.uuid4(),
                service=service,
                environment=env,
                model_version=version,
                digest="0" * 64,
                state="live",
                requested_by=user,
                live_at=timezone.now() - timezone.timedelta(hours=2),
                commit_sha="0" * 40,
            )
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO metrics_metricsample
                (service_id, environment_id, release_id, metric, time, value)
            SELECT r.service_id, r.environment_id, r.id, m,
                   now() - g * interval '30 seconds',
                   CASE WHEN m LIKE 'latency%%' THEN 100 + 60 * random()
                        WHEN m = 'request_rate' THEN 20 + 10 * random()
                        ELSE random() / 200 END
            FROM releases_release r, generate_series(0, 119) AS g, unnest(%s::text[]) AS m
            """,
            [METRICS],
        )
        cursor.execute(
            """
            INSERT INTO metrics_metriclatest
                (service_id, environment_id, release_id, metric, time, value)
            SELECT DISTINCT ON (service_id, environment_id, metric)
                   service_id, environment_id, release_id, metric, time, value
            FROM metrics_metricsample
            ORDER BY service_id, environment_id, metric, time DESC
            """
        )
        cursor.execute("ANALYZE")
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def _metrics_poll_lands():
    """What a metrics poll changes for the version keys: the newest sample time."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("UPDATE metrics_metriclatest SET time = now()")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_gunicorn(
    database_url: str, workdir: Path, *, workers: int, threads: int, worker_connections: int
):
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "PYTHONPATH")},
        "DJANGO_SETTINGS_MODULE": "controlplane.settings",
        "DEBUG": "0",
        "SECRET_KEY": os.environ.get("SECRET_KEY") or secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "127.0.0.1",
        # As behind the TLS-terminating proxy of a deployment (no redirect to https).
        "SECURE_PROXY_SSL_HEADER": "1",
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": "memory://",
        "SLIPWAY_VAR_DIR": str(workdir / "var"),
        "STATIC_ROOT": str(workdir / "static"),
        "PORT": str(port),
        "GUNICORN_WORKERS": str(workers),
        "GUNICORN_THREADS": str(threads),
        "GUNICORN_WORKER_TMP_DIR": str(workdir),
        "PROMETHEUS_MULTIPROC_DIR": str(workdir / "prom"),
        "LOG_LEVEL": "WARNING",
        "GUNICORN_LOG_LEVEL": "warning",
        # No worker recycling during a run: a recycled worker takes its CPU counters
        # with it (the deployed default recycles after 2,000 +- 200 requests).
        "GUNICORN_MAX_REQUESTS": "0",
    }
    if worker_connections:
        # gunicorn reads extra command-line settings from this variable.
        env["GUNICORN_CMD_ARGS"] = f"--worker-connections {worker_connections}"
    log = (workdir / f"gunicorn-{port}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--config", "deploy/gunicorn.conf.py"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit((workdir / f"gunicorn-{port}.log").read_text()[-3000:])
        with contextlib.suppress(OSError):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                conn.close()
                return process, port
        time.sleep(0.2)
    raise SystemExit("gunicorn did not answer /healthz within 60 s")


def _stop(process) -> None:
    os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def _workers_cpu(master_pid: int) -> float:
    """CPU seconds (user + system) used so far by gunicorn's worker processes."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == master_pid:  # ppid
                total += (int(fields[11]) + int(fields[12])) / TICKS
    return total


class Session:
    """One keep-alive connection with the signed-in cookie and an ETag per path."""

    def __init__(self, port: int, cookie: str, *, conditional: bool):
        self.port, self.cookie, self.conditional = port, cookie, conditional
        self.conn = None
        self.etags: dict[str, str] = {}

    def get(self, path: str, etags: dict | None = None) -> tuple[int, float]:
        etags = self.etags if etags is None else etags
        headers = {
            "Cookie": f"sessionid={self.cookie}",
            "HX-Request": "true",
            "X-Forwarded-Proto": "https",
        }
        if self.conditional and path in etags:
            headers["If-None-Match"] = etags[path]
        started = time.perf_counter()
        for attempt in range(2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                self.conn.request("GET", path, headers=headers)
                response = self.conn.getresponse()
                response.read()
                break
            except (OSError, http.client.HTTPException):
                self.conn = None
                if attempt:
                    raise
        tag = response.getheader("ETag")
        if tag:
            etags[path] = tag
        return response.status, time.perf_counter() - started


def _closed_loop(port, cookie, path, *, connections: int, seconds: float, conditional: bool):
    done, latencies = [], []
    stop = time.monotonic() + seconds
    lock = threading.Lock()

    def run():
        session = Session(port, cookie, conditional=conditional)
        session.get(path)  # warm: connection and ETag
        while time.monotonic() < stop:
            status, took = session.get(path)
            with lock:
                done.append(status)
                latencies.append(took)

    threads = [threading.Thread(target=run) for _ in range(connections)]
    started = time.monotonic()
    # The load generator shares the machine's cores with gunicorn: its own CPU (this
    # process, every client thread) is part of what 32 connections cost.
    client_cpu = time.process_time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - started
    client_cpu = time.process_time() - client_cpu
    wrong = [s for s in done if s not in (200, 304)]
    if wrong:
        raise SystemExit(f"{path}: {len(wrong)} answers were not 200/304, e.g. {wrong[0]}")
    return len(done) / wall, percentile(latencies, 0.5) * 1000, client_cpu / wall


def _open_loop(
    port, cookie, paths, *, pages: int, rate: float, seconds: float, conditional: bool, master
):
    """``rate`` requests/s from ``pages`` open pages in turn (each page polls one path and
    keeps its own ETag, as live.js does), over a pool of keep-alive connections."""
    page_etags = [{} for _ in range(pages)]
    connections = [Session(port, cookie, conditional=conditional) for _ in range(64)]
    free = list(connections)
    lock = threading.Lock()
    results = []

    def one(page):
        with lock:
            session = free.pop() if free else Session(port, cookie, conditional=conditional)
        try:
            results.append(session.get(paths[page % len(paths)], page_etags[page]))
        finally:
            with lock:
                free.append(session)

    if conditional:
        # Steady state: each page has polled once already (its first poll has no ETag).
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(one, range(pages)))
        results.clear()
    total = int(rate * seconds)
    cpu_before = _workers_cpu(master.pid)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=64) as pool:
        for i in range(total):
            if i == total // 2:
                _metrics_poll_lands()
            delay = started + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            pool.submit(one, i % pages)
    wall = time.monotonic() - started
    cpu = _workers_cpu(master.pid) - cpu_before
    statuses = [s for s, _ in results]
    latencies = [t for _, t in results]
    return {
        "sent": total,
        "answered": len(results),
        "rate": len(results) / wall,
        "not_modified": statuses.count(304) / max(1, len(statuses)),
        "errors": sum(1 for s in statuses if s not in (200, 304)),
        "p50": percentile(latencies, 0.5) * 1000,
        "p95": percentile(latencies, 0.95) * 1000,
        "cpu_share": cpu / wall,  # in cores; divided by workers below
        "wall": wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=500)
    parser.add_argument("--poll", type=float, default=5.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument(
        "--worker-connections",
        type=int,
        default=0,
        help="gunicorn's per-worker connection limit (default: gunicorn's, 1000)",
    )
    parser.add_argument(
        "--throughput-only", action="store_true", help="skip part 1 (compare worker settings)"
    )
    args = parser.parse_args()

    database_url = temporary_postgres("bench_live_pages")
    if database_url is None:
        raise SystemExit("this benchmark needs PostgreSQL (gunicorn workers share the database)")
    workdir = Path(tempfile.mkdtemp(prefix="slipway-bench-live-"))
    try:
        setup_django(workdir, database_url)
        cookie = _seed()
        from django.db import connections

        connections.close_all()
        master, port = _start_gunicorn(
            database_url,
            workdir,
            workers=args.workers,
            threads=args.threads,
            worker_connections=args.worker_connections,
        )
        try:
            _report(args, port, cookie, master)
        finally:
            _stop(master)
    finally:
        drop_postgres(database_url)


def _report(args, port, cookie, master) -> None:
    rate = args.pages / args.poll
    print(
        f"gunicorn gthread {args.workers} workers x {args.threads} threads, "
        f"worker_connections {args.worker_connections or 1000}; "
        f"{os.cpu_count()} CPUs; 4 services x 2 environments"
    )
    fragments = ["/fleet/live/", "/dashboards/svc-0/prod/live/"]
    full = ["/fleet/", "/dashboards/svc-0/prod/"]
    if not args.throughput_only:
        _live_load(args, port, cookie, master, rate, fragments, full)
    _throughput(args, port, cookie)


def _live_load(args, port, cookie, master, rate, fragments, full) -> None:
    print(f"\n1. {args.pages} open live pages polling every {args.poll:g} s = {rate:g} req/s")
    print(
        "| requests | sent | answered/s | 304 share | p50 ms | p95 ms | worker CPU share "
        "| CPU ms/request |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label, paths, conditional in (
        ("fragments, If-None-Match (live.js)", fragments, True),
        ("baseline: full pages, unconditional", full, False),
    ):
        r = _open_loop(
            port,
            cookie,
            paths,
            pages=args.pages,
            rate=rate,
            seconds=args.seconds,
            conditional=conditional,
            master=master,
        )
        share = r["cpu_share"] / args.workers
        if r["errors"]:
            raise SystemExit(f"{label}: {r['errors']} answers were not 200/304")
        print(
            f"| {label} | {r['sent']} | {r['rate']:.0f} | {r['not_modified']:.0%} | "
            f"{r['p50']:.0f} | {r['p95']:.0f} | {share:.0%} | "
            f"{r['cpu_share'] * 1000 / max(r['rate'], 1e-9):.1f} |"
        )


def _throughput(args, port, cookie) -> None:
    print(
        "\n2. Closed loop, keep-alive connections, requests/s (p50 ms; the client's own CPU, "
        "in cores)"
    )
    print("| page | 1 | 8 | 32 |")
    print("| --- | ---: | ---: | ---: |")
    seconds = max(5.0, args.seconds / 2)
    for label, path, conditional in (
        ("full fleet page (baseline)", "/fleet/", False),
        ("fleet fragment, 304", "/fleet/live/", True),
    ):
        cells = []
        for connections in (1, 8, 32):
            throughput, p50, client = _closed_loop(
                port,
                cookie,
                path,
                connections=connections,
                seconds=seconds,
                conditional=conditional,
            )
            cells.append(f"{throughput:.0f} ({p50:.0f}; {client:.2f})")
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
