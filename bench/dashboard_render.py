"""Benchmark: the service dashboard with 10 million metric samples in the table.

    .venv/bin/python -m bench.dashboard_render [--samples 10000000] [--requests 15]

Server time (Django test client, in process, so no network) and response size of
``/dashboards/<service>/prod/?range=…`` for 1 h, 24 h, 7 d and 30 d, p50/p95, side by side
with the same page rendered through a naive full query (every raw sample in the range, no
roll-ups, no downsampling), as a ratio. The naive variant swaps the chart selector for a
plain ``SELECT`` of the range; everything else on the page is identical.

Data: a throwaway PostgreSQL database. 100 services live in prod; the measured service has
7 metrics every 30 s for 30 days (604,800 rows); the other 99 share the rest of the samples
evenly over the same 30 days. Roll-ups (5 min, 1 h) are computed with SQL ``date_bin`` over
the samples, the same aggregates the rollup task keeps. Inserting takes a few minutes.
"""

from __future__ import annotations

import argparse
import statistics
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

    from apps.registry.models import ModelVersion
    from apps.releases.models import Environment, Release, Service, ServiceEnvironment

    prod = Environment.objects.create(name="prod", order=1)
    user = get_user_model().objects.create(username="otto")
    user.groups.add(Group.objects.get_or_create(name="oncall")[0])
    services = Service.objects.bulk_create(
        Service(
            name=f"svc-{i:04d}",
            owner_team="bench",
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


def _naive_chart_series(*, service, environment, metric, start, end, max_points=1000):
    """What a first version would do: every raw sample in the range, as is."""
    from apps.metrics.models import MetricSample

    return list(
        MetricSample.objects.filter(
            service=service, environment=environment, metric=metric, time__gte=start, time__lte=end
        )
        .order_by("time")
        .values_list("time", "value")
    )


def _measure(client, url: str, requests: int) -> tuple[list[float], int]:
    client.get(url)  # warm caches
    times, size = [], 0
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(url)
        times.append(time.perf_counter() - started)
        assert response.status_code == 200, response.status_code
        size = len(response.content)
    return times, size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=10_000_000)
    parser.add_argument("--services", type=int, default=100)
    parser.add_argument("--requests", type=int, default=15)
    parser.add_argument(
        "--profile",
        choices=RANGES,
        help="also print where one Slipway request of this range spends its time",
    )
    args = parser.parse_args(argv)

    url = temporary_postgres("slipway_bench_dashboard")
    if url is None:
        print("this benchmark needs PostgreSQL on 127.0.0.1:5432")
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="slipway-bench-dashboard-"))
    try:
        setup_django(workdir, url, ALLOWED_HOSTS="testserver", SECURE_SSL_REDIRECT="0")
        from django.test import Client

        import apps.dashboards.charts as charts

        user, prod, services, releases = _fleet(args.services)
        started = time.perf_counter()
        inserted = _insert_samples(args.samples, services, releases, prod)
        print(
            f"{inserted:,} samples inserted with roll-ups in {time.perf_counter() - started:.0f} s"
        )
        client = Client()
        client.force_login(user)
        smart_selector = charts.chart_series
        print(
            f"\n{'range':>5} | {'Slipway p50/p95 ms':>20} | {'size KiB':>8} | "
            f"{'naive p50/p95 ms':>18} | {'size KiB':>8} | naive/Slipway p50, size"
        )
        for range_key in RANGES:
            page = f"/dashboards/{services[0].name}/prod/?range={range_key}"
            charts.chart_series = smart_selector
            fast, fast_size = _measure(client, page, args.requests)
            charts.chart_series = _naive_chart_series
            slow, slow_size = _measure(client, page, max(3, args.requests // 3))
            charts.chart_series = smart_selector
            fast_ms = [t * 1000 for t in fast]
            slow_ms = [t * 1000 for t in slow]
            print(
                f"{range_key:>5} | {percentile(fast_ms, 0.5):8.0f} / "
                f"{percentile(fast_ms, 0.95):<8.0f} | {fast_size / 1024:8.0f} | "
                f"{percentile(slow_ms, 0.5):7.0f} / {percentile(slow_ms, 0.95):<8.0f} | "
                f"{slow_size / 1024:8.0f} | "
                f"{statistics.median(slow) / statistics.median(fast):5.1f}x, "
                f"{slow_size / fast_size:5.1f}x"
            )
        if args.profile:
            _profile(client, f"/dashboards/{services[0].name}/prod/?range={args.profile}")
    finally:
        drop_postgres(url)
    return 0


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
