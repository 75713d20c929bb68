"""Benchmark: the service dashboard with 10 million metric samples, and the fleet page.

    .venv/bin/python -m bench.dashboard_render [--case dashboard|fleet] [--samples 10000000]
        [--requests 15] [--fleet-services 1000] [--fleet-environments 5]

Each case runs in its own process and throwaway database (Django is configured once per
process); without ``--case`` both run, one after the other.

Dashboard case:

Server time (Django test client, in process, so no network) and response size of
``/dashboards/<service>/prod/?range=…`` for 1 h, 24 h, 7 d and 30 d, p50/p95, side by side
with the same page rendered through a naive full query (every raw sample in the range, no
roll-ups, no downsampling), as a ratio. The naive variant swaps the chart selector for a
plain ``SELECT`` of the range; everything else on the page is identical.

Data: a throwaway PostgreSQL database. 100 services live in prod; the measured service has
7 metrics every 30 s for 30 days (604,800 rows); the other 99 share the rest of the samples
evenly over the same 30 days. Roll-ups (5 min, 1 h) are computed with SQL ``date_bin`` over
the samples, the same aggregates the rollup task keeps. Inserting takes a few minutes.

Fleet case: ``/fleet/`` with 1,000 services live in 5 environments (5,000 targets, 7 latest
metrics and 2 SLO states each, some approvals waiting, some failures, ~50 in breach),
p50/p95 server time and queries per render of page 1 (the worst rows, with their rollback
offers), of a filtered page deep in the fleet and of the live fragment, next to the same
page with every row on it (the page before paging) in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.support import drop_postgres, percentile, setup_django, temporary_postgres

METRICS = [
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "error_rate",
    "request_rate",
    "cost_per_day",
    "drift_psi",
]
RANGES = ["1h", "24h", "7d", "30d"]
DAYS = 30


def _fleet(count: int):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.utils import timezone

    from apps.accounts.models import Team
    from apps.registry.models import ModelVersion
    from apps.releases.models import Environment, Release, Service, ServiceEnvironment

    prod = Environment.objects.create(name="prod", order=1)
    user = get_user_model().objects.create(username="otto")
    user.groups.add(Group.objects.get_or_create(name="oncall")[0])
    services = Service.objects.bulk_create(
        Service(
            name=f"svc-{i:04d}",
            owner_team=Team.objects.get_or_create(slug="bench")[0],
            registered_model=f"svc-{i:04d}",
            slo_p95_latency_ms=250,
            slo_error_rate=0.01,
        )
        for i in range(count)
    )
    versions = ModelVersion.objects.bulk_create(
        ModelVersion(name=s.name, version=1) for s in services
    )
    ServiceEnvironment.objects.bulk_create(
        ServiceEnvironment(service=s, environment=prod) for s in services
    )
    live_at = timezone.now() - timezone.timedelta(days=DAYS + 1)
    releases = Release.objects.bulk_create(
        Release(
            uid=uuid.uuid4(),
            service=s,
            environment=prod,
            model_version=v,
            digest="0" * 64,
            state="live",
            requested_by=user,
            live_at=live_at,
            commit_sha="0" * 40,
        )
        for s, v in zip(services, versions, strict=True)
    )
    return user, prod, services, releases


def _insert_samples(total: int, services, releases, prod) -> int:
    from django.db import connection

    target_points = DAYS * 24 * 120  # every 30 s
    target_rows = target_points * len(METRICS)
    others = len(services) - 1
    per_series = max(1, (total - target_rows) // (others * len(METRICS)))
    other_step = max(1, DAYS * 24 * 3600 // per_series)
    with connection.cursor() as cursor:
        for index, (service, release) in enumerate(zip(services, releases, strict=True)):
            step, points = (30, target_points) if index == 0 else (other_step, per_series)
            cursor.execute(
                """
                INSERT INTO metrics_metricsample
                    (service_id, environment_id, release_id, metric, time, value)
                SELECT %s, %s, %s, m, now() - g * make_interval(secs => %s),
                       CASE WHEN m LIKE 'latency%%' THEN 100 + 60 * random()
                            WHEN m = 'request_rate' THEN 20 + 10 * random()
                            ELSE random() / 10 END
                FROM generate_series(0, %s - 1) AS g, unnest(%s::text[]) AS m
                """,
                [service.pk, prod.pk, release.pk, step, points, METRICS],
            )
        cursor.execute("SELECT count(*) FROM metrics_metricsample")
        inserted = cursor.fetchone()[0]
        for seconds in (300, 3600):
            cursor.execute(
                """
                INSERT INTO metrics_metricrollup
                    (service_id, environment_id, metric, resolution, bucket_start,
                     min, max, sum, count, last)
                SELECT service_id, environment_id, metric, %s,
                       date_bin(make_interval(secs => %s), time, TIMESTAMPTZ 'epoch') AS b,
                       min(value), max(value), sum(value), count(*),
                       (array_agg(value ORDER BY time DESC))[1]
                FROM metrics_metricsample GROUP BY service_id, environment_id, metric, b
                """,
                [seconds, seconds],
            )
        cursor.execute("ANALYZE")
    return inserted


def _naive_chart_page_series(*, service, environment, metrics, start, end, max_points=1000):
    """What a first version would do: one query per series, every raw sample in the
    range, as is."""
    from apps.metrics.models import MetricSample

    return {
        metric: list(
            MetricSample.objects.filter(
                service=service,
                environment=environment,
                metric=metric,
                time__gte=start,
                time__lte=end,
            )
            .order_by("time")
            .values_list("time", "value")
        )
        for metric in metrics
    }


def _measure(client, url: str, requests: int) -> tuple[list[float], int]:
    times, size, _ = _measure_with_queries(client, url, requests)
    return times, size


def _measure_with_queries(
    client, url: str, requests: int, before=None
) -> tuple[list[float], int, int]:
    """Times and size of ``requests`` GETs of ``url``, and the queries of the last one
    (counted with an execute wrapper: Django's query log stops at 9,000). ``before`` runs
    ahead of each request, off the clock."""
    from django.db import connection

    client.get(url)  # warm caches
    times, size, queries = [], 0, []

    def count(run, *args):
        queries.append(1)
        return run(*args)

    for _ in range(requests):
        queries.clear()
        if before is not None:
            before()
        with connection.execute_wrapper(count):
            started = time.perf_counter()
            response = client.get(url)
            times.append(time.perf_counter() - started)
        assert response.status_code == 200, response.status_code
        size = len(response.content)
    return times, size, len(queries)


def _time_calls(function, requests: int) -> list[float]:
    function()  # warm caches
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--case", choices=("dashboard", "fleet"))
    parser.add_argument("--samples", type=int, default=10_000_000)
    parser.add_argument("--services", type=int, default=100)
    parser.add_argument("--requests", type=int, default=15)
    parser.add_argument("--fleet-services", type=int, default=1000)
    parser.add_argument("--fleet-environments", type=int, default=5)
    parser.add_argument(
        "--profile",
        choices=[*RANGES, "fleet"],
        help="also print where one Slipway request of this range (or the fleet page) "
        "spends its time",
    )
    args = parser.parse_args(argv)
    if args.case is None:
        # One process per case: Django is configured once per process, for one database.
        argv = list(sys.argv[1:] if argv is None else argv)
        codes = [
            subprocess.call([sys.executable, "-m", "bench.dashboard_render", "--case", case, *argv])
            for case in ("dashboard", "fleet")
        ]
        return max(codes)

    url = temporary_postgres(f"slipway_bench_{args.case}")
    if url is None:
        print("this benchmark needs PostgreSQL on 127.0.0.1:5432")
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="slipway-bench-dashboard-"))
    try:
        setup_django(workdir, url, ALLOWED_HOSTS="testserver", SECURE_SSL_REDIRECT="0")
        if args.case == "fleet":
            _fleet_case(args)
        else:
            _dashboard_case(args)
    finally:
        drop_postgres(url)
    return 0


def _dashboard_case(args) -> None:
    from django.test import Client

    import apps.dashboards.charts as charts

    user, prod, services, releases = _fleet(args.services)
    started = time.perf_counter()
    inserted = _insert_samples(args.samples, services, releases, prod)
    print(f"{inserted:,} samples inserted with roll-ups in {time.perf_counter() - started:.0f} s")
    client = Client()
    client.force_login(user)
    smart_selector = charts.chart_page_series
    print(
        f"\n{'range':>5} | {'Slipway p50/p95 ms':>20} | {'size KiB':>8} | "
        f"{'naive p50/p95 ms':>18} | {'size KiB':>8} | naive/Slipway p50, p95, size"
    )
    for range_key in RANGES:
        page = f"/dashboards/{services[0].name}/prod/?range={range_key}"
        charts.chart_page_series = smart_selector
        fast, fast_size = _measure(client, page, args.requests)
        charts.chart_page_series = _naive_chart_page_series
        slow, slow_size = _measure(client, page, max(3, args.requests // 3))
        charts.chart_page_series = smart_selector
        _print_row(range_key, fast, fast_size, slow, slow_size)
    if args.profile and args.profile != "fleet":
        _profile(client, f"/dashboards/{services[0].name}/prod/?range={args.profile}")


def _print_row(label: str, fast: list[float], fast_size: int, slow: list[float], slow_size: int):
    fast_ms = [t * 1000 for t in fast]
    slow_ms = [t * 1000 for t in slow]
    print(
        f"{label:>5} | {percentile(fast_ms, 0.5):8.0f} / "
        f"{percentile(fast_ms, 0.95):<8.0f} | {fast_size / 1024:8.0f} | "
        f"{percentile(slow_ms, 0.5):7.0f} / {percentile(slow_ms, 0.95):<8.0f} | "
        f"{slow_size / 1024:8.0f} | "
        f"{statistics.median(slow) / statistics.median(fast):5.1f}x, "
        f"{percentile(slow, 0.95) / percentile(fast, 0.95):5.1f}x, "
        f"{slow_size / fast_size:5.1f}x"
    )


# --- the fleet page ---------------------------------------------------------------------


def _big_fleet(services: int, environments: int):
    """``services`` services live in ``environments`` environments, with what the fleet
    page reads: targets with Argo CD status, releases (live, a few failed or waiting),
    the latest value of every metric and two SLO states per target."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db import connection
    from django.utils import timezone

    from apps.accounts.models import Team
    from apps.registry.models import ModelVersion
    from apps.releases.models import Environment, Release, Service, ServiceEnvironment

    user = get_user_model().objects.create(username="otto")
    user.groups.add(Group.objects.get_or_create(name="oncall")[0])
    envs = Environment.objects.bulk_create(
        Environment(name=f"env-{i}", order=i) for i in range(environments)
    )
    teams = Team.objects.bulk_create(Team(slug=f"team-{t}") for t in range(40))
    fleet = Service.objects.bulk_create(
        Service(
            name=f"svc-{i:04d}",
            owner_team=teams[i % 40],
            registered_model=f"svc-{i:04d}",
            slo_p95_latency_ms=250,
            slo_error_rate=0.01,
        )
        for i in range(services)
    )
    versions = ModelVersion.objects.bulk_create(
        ModelVersion(name=s.name, version=v) for s in fleet for v in (1, 2)
    )
    now = timezone.now()
    ServiceEnvironment.objects.bulk_create(
        ServiceEnvironment(
            service=s,
            environment=e,
            sync_status="Synced",
            health_status="Healthy",
            health_since=now,
        )
        for s in fleet
        for e in envs
    )
    # A realistic row: rendered manifests and config are what a naive reader drags along.
    files = {f"deployment-{n}.yaml": "x" * 600 for n in range(6)}
    releases = []
    for index, service in enumerate(fleet):
        for env in envs:
            releases.append(
                Release(
                    uid=uuid.uuid4(),
                    service=service,
                    environment=env,
                    model_version=versions[2 * index],
                    digest="0" * 64,
                    state="live",
                    requested_by=user,
                    live_at=now,
                    commit_sha="0" * 40,
                    rendered_files=files,
                    config={"replicas": 2},
                )
            )
            if (index + env.order) % 20 == 0:
                state = "pending_approval" if index % 40 else "failed"
                releases.append(
                    Release(
                        uid=uuid.uuid4(),
                        service=service,
                        environment=env,
                        model_version=versions[2 * index + 1],
                        digest="1" * 64,
                        state=state,
                        requested_by=user,
                        rendered_files=files,
                    )
                )
    Release.objects.bulk_create(releases, batch_size=1000)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO metrics_metriclatest
                (service_id, environment_id, release_id, metric, time, value)
            SELECT r.service_id, r.environment_id, r.id, m, now(), random() * 200
            FROM releases_release r, unnest(%s::text[]) AS m WHERE r.state = 'live'
            """,
            [METRICS],
        )
        # What the metrics poll keeps on each target it stored a shown metric for.
        cursor.execute("UPDATE releases_serviceenvironment SET has_metrics = true")
        cursor.execute(
            """
            INSERT INTO metrics_slostate
                (service_id, environment_id, release_id, metric, threshold, last_value,
                 last_evaluated_at, consecutive_bad, consecutive_good, in_breach)
            SELECT r.service_id, r.environment_id, r.id, m, 1, 0, now(), 0, 1,
                   r.id %% 97 = 0
            FROM releases_release r, unnest(ARRAY['latency_p95_ms', 'error_rate']) AS m
            WHERE r.state = 'live'
            """,
            [],
        )
        cursor.execute("ANALYZE")
    return user


def _fleet_case(args) -> None:
    from django.test import Client
    from django.urls import reverse

    from apps.dashboards import fleet

    started = time.perf_counter()
    user = _big_fleet(args.fleet_services, args.fleet_environments)
    print(
        f"fleet of {args.fleet_services:,} services x {args.fleet_environments} environments "
        f"built in {time.perf_counter() - started:.0f} s"
    )
    client = Client()
    client.force_login(user)
    page = reverse("dashboards:fleet")
    paged = fleet.PAGE_SIZE
    # "ranked": the first request after a change (a metrics poll, a release moving) ranks
    # the whole fleet again; the others reuse the ranking kept under the fleet's version
    # key, as every open page does until the next change.
    cases = [
        ("page 1", page, None),
        ("page 1, ranked", page, fleet.forget_rankings),
        ("page 40, ok only", f"{page}?status=ok&page=40", None),
        ("live fragment (200)", reverse("dashboards:fleet_live"), None),
        ("fragment, ranked", reverse("dashboards:fleet_live"), fleet.forget_rankings),
    ]
    results = {}
    for label, url, before in cases:
        results[label] = _measure_with_queries(client, url, args.requests, before)
    # Baseline, same run: the page before paging, every row of the fleet on one page
    # (the same reads and template, PAGE_SIZE above the fleet's size), ranked each time.
    fleet.PAGE_SIZE = 10**9
    try:
        slow, slow_size, slow_queries = _measure_with_queries(
            client, page, max(3, args.requests // 3), fleet.forget_rankings
        )
        slow_reads = _time_calls(lambda: fleet.fleet_page(with_rollback=True), 3)
    finally:
        fleet.PAGE_SIZE = paged
    print(
        f"\n{'page':>20} | {'Slipway p50/p95 ms':>20} | {'size KiB':>8} | queries | "
        f"baseline (all {args.fleet_services * args.fleet_environments:,} rows on one page) "
        "÷ Slipway, p50 and p95"
    )
    for label, (fast, fast_size, fast_queries) in results.items():
        fast_ms = [t * 1000 for t in fast]
        print(
            f"{label:>20} | {percentile(fast_ms, 0.5):8.0f} / {percentile(fast_ms, 0.95):<8.0f} | "
            f"{fast_size / 1024:8.0f} | {fast_queries:7} | "
            f"{statistics.median(slow) / statistics.median(fast):6.1f}x, "
            f"{percentile(slow, 0.95) / percentile(fast, 0.95):6.1f}x"
        )
    slow_ms = [t * 1000 for t in slow]
    print(
        f"{'baseline: all rows':>20} | {percentile(slow_ms, 0.5):8.0f} / "
        f"{percentile(slow_ms, 0.95):<8.0f} | {slow_size / 1024:8.0f} | {slow_queries:7} |"
    )
    # The reads alone, without the template.
    fast_reads = _time_calls(lambda: fleet.fleet_page(with_rollback=True), args.requests)
    print(
        f"fleet_page() alone (page 1): {percentile([t * 1000 for t in fast_reads], 0.5):.0f} / "
        f"{percentile([t * 1000 for t in fast_reads], 0.95):.0f} ms p50 / p95; every row: "
        f"{statistics.median(slow_reads) * 1000:.0f} ms p50"
    )
    if args.profile == "fleet":
        _profile(client, page)


def _profile(client, url: str) -> None:
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    client.get(url)
    profiler.disable()
    print(f"\nprofile of {url} (cumulative, top 25):")
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    print("(own time, top 15):")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    sys.exit(main())
