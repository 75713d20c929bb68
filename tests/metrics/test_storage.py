"""Storage: roll-ups, retention, chart series and the dashboards' query counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from apps.metrics import selectors
from apps.metrics.models import MetricRollup, MetricSample, Resolution, SourceHealth
from apps.metrics.services import metrics_poll, metrics_retention, metrics_rollup

pytestmark = pytest.mark.django_db

START = datetime(2024, 3, 1, tzinfo=UTC)
STEP = timedelta(seconds=30)


@pytest.fixture
def release(make_live):
    return make_live("churn-model", "prod")


def _write(release, metric: str, values, *, start=START, step=STEP):
    MetricSample.objects.bulk_create(
        MetricSample(
            service_id=release.service_id,
            environment_id=release.environment_id,
            release_id=release.pk,
            metric=metric,
            time=start + step * i,
            value=float(value),
        )
        for i, value in enumerate(values)
    )


def _rollups(resolution):
    return list(
        MetricRollup.objects.filter(resolution=resolution)
        .order_by("bucket_start")
        .values_list("bucket_start", "min", "max", "sum", "count", "last")
    )


def test_rollups_aggregate_5_minute_and_hourly_buckets(release):
    _write(release, "latency_p95_ms", range(240))  # two hours, one per 30 s: 0, 1, ... 239
    metrics_rollup(now=START + timedelta(hours=2))
    five = _rollups(Resolution.FIVE_MINUTES)
    assert len(five) == 24
    assert five[0] == (START, 0, 9, sum(range(10)), 10, 9)
    assert five[-1] == (START + timedelta(minutes=115), 230, 239, sum(range(230, 240)), 10, 239)
    hourly = _rollups(Resolution.ONE_HOUR)
    assert hourly == [
        (START, 0, 119, sum(range(120)), 120, 119),
        (START + timedelta(hours=1), 120, 239, sum(range(120, 240)), 120, 239),
    ]


def test_rollups_are_idempotent_and_catch_late_rows(release):
    _write(release, "error_rate", [1, 2, 3])
    metrics_rollup(now=START + timedelta(minutes=2))
    metrics_rollup(now=START + timedelta(minutes=2))
    assert _rollups(Resolution.FIVE_MINUTES) == [(START, 1, 3, 6, 3, 3)]
    # A later poll lands in the same bucket; the next run recomputes it.
    _write(release, "error_rate", [0.5], start=START + timedelta(minutes=4))
    metrics_rollup(now=START + timedelta(minutes=5))
    assert _rollups(Resolution.FIVE_MINUTES)[0] == (START, 0.5, 3, 6.5, 4, 0.5)
    assert _rollups(Resolution.ONE_HOUR) == [(START, 0.5, 3, 6.5, 4, 0.5)]


def test_rollups_catch_up_in_bounded_steps(release, settings):
    settings.METRICS_ROLLUP_MAX_BUCKETS_PER_RUN = 5
    _write(release, "request_rate", range(120))  # one hour: 12 buckets
    assert metrics_rollup(now=START + timedelta(hours=1))["5m"] == 5
    assert len(_rollups(Resolution.FIVE_MINUTES)) == 5
    # Each later run starts one bucket before the newest (it may have been partial).
    metrics_rollup(now=START + timedelta(hours=1))
    metrics_rollup(now=START + timedelta(hours=1))
    metrics_rollup(now=START + timedelta(hours=1))
    assert len(_rollups(Resolution.FIVE_MINUTES)) == 12


def test_retention_deletes_old_samples_in_batches(release, settings, django_assert_max_num_queries):
    settings.METRICS_RAW_RETENTION_DAYS = 14
    settings.METRICS_RETENTION_BATCH = 7
    now = START + timedelta(days=20)
    _write(release, "error_rate", range(30), start=START)  # 20 days old
    _write(release, "error_rate", range(5), start=now - timedelta(days=1))
    metrics_rollup(now=START + timedelta(minutes=15))
    deleted = metrics_retention(now=now)
    assert deleted["samples"] == 30
    assert MetricSample.objects.count() == 5
    assert MetricSample.objects.order_by("time").first().time == now - timedelta(days=1)
    assert deleted["rollups_5m"] == 0  # 90 days for those
    settings.METRICS_ROLLUP_5M_RETENTION_DAYS = 10
    assert metrics_retention(now=now)["rollups_5m"] == 3


def test_chart_series_reads_raw_then_rollups_and_never_exceeds_max_points(release, settings):
    settings.METRICS_ROLLUP_MAX_BUCKETS_PER_RUN = 1000
    _write(release, "latency_p95_ms", range(2880 * 3))  # three days at 30 s
    metrics_rollup(now=START + timedelta(days=3))
    six_hours = selectors.chart_series(
        service=release.service,
        environment=release.environment,
        metric="latency_p95_ms",
        start=START,
        end=START + timedelta(hours=6),
        max_points=500,
    )
    assert len(six_hours) == 500  # 721 raw points, downsampled
    assert six_hours[0] == (START, 0.0)
    day = selectors.chart_series(
        service=release.service,
        environment=release.environment,
        metric="latency_p95_ms",
        start=START,
        end=START + timedelta(days=1),
    )
    assert len(day) == 289  # 5-minute averages, under max_points: all of them
    assert day[0] == (START, sum(range(10)) / 10)
    week = selectors.chart_series(
        service=release.service_id,
        environment=release.environment_id,
        metric="latency_p95_ms",
        start=START,
        end=START + timedelta(days=7),
        max_points=300,
    )
    assert len(week) == 300
    assert week[0] == (START, sum(range(10)) / 10)  # a 5-minute average
    month = selectors.chart_series(
        service=release.service,
        environment=release.environment,
        metric="latency_p95_ms",
        start=START - timedelta(days=20),
        end=START + timedelta(days=10),
    )
    assert len(month) == 72  # hourly averages, fewer than max_points: all of them
    assert month[1] == (START + timedelta(hours=1), sum(range(120, 240)) / 120)


def test_chart_series_keeps_sample_times_to_the_microsecond(release):
    # On PostgreSQL the times travel as integer microseconds (not parsed timestamps);
    # they must come back as the same instants, in order.
    start = START + timedelta(microseconds=123_457)
    _write(
        release, "error_rate", [0.5, 0.25, 0.125], start=start, step=timedelta(seconds=7.000_001)
    )
    points = selectors.chart_series(
        service=release.service,
        environment=release.environment,
        metric="error_rate",
        start=START,
        end=START + timedelta(minutes=1),
    )
    assert points == [
        (start + timedelta(seconds=7.000_001) * i, value)
        for i, value in enumerate([0.5, 0.25, 0.125])
    ]
    assert all(when.utcoffset() == timedelta(0) for when, _ in points)


def test_chart_series_is_one_query(release, django_assert_num_queries):
    _write(release, "latency_p95_ms", range(100))
    with django_assert_num_queries(1):
        selectors.chart_series(
            service=release.service_id,
            environment=release.environment_id,
            metric="latency_p95_ms",
            start=START,
            end=START + timedelta(hours=1),
        )


def test_chart_page_series_reads_every_metric_in_one_query(release, django_assert_num_queries):
    _write(release, "latency_p95_ms", range(100))
    _write(release, "error_rate", [0.5] * 40)
    with django_assert_num_queries(1):
        page = selectors.chart_page_series(
            service=release.service_id,
            environment=release.environment_id,
            metrics=["latency_p95_ms", "error_rate", "drift_psi"],
            start=START,
            end=START + timedelta(hours=1),
            max_points=50,
        )
    assert [len(page[m]) for m in ("latency_p95_ms", "error_rate", "drift_psi")] == [50, 40, 0]
    # Numeric arrays, equal to the one-series selector's points.
    assert all(isinstance(t, int) for t in page["latency_p95_ms"].times)
    assert page["latency_p95_ms"].points() == selectors.chart_series(
        service=release.service_id,
        environment=release.environment_id,
        metric="latency_p95_ms",
        start=START,
        end=START + timedelta(hours=1),
        max_points=50,
    )


def test_latest_by_target_is_one_query_whatever_the_fleet(
    make_live, settings, django_assert_num_queries
):
    settings.METRICS_BACKEND = "demo"
    first = make_live("svc-0", "prod")
    metrics_poll(now=START)
    with django_assert_num_queries(1):
        small = selectors.latest_by_target()
    for i in range(1, 25):
        make_live(f"svc-{i}", "prod")
    metrics_poll(now=START + STEP)
    with django_assert_num_queries(1):
        large = selectors.latest_by_target()
    assert len(small) == 1 and len(large) == 25
    assert all(len(entry) == 10 for entry in large.values())  # 9 metrics + observed_at
    assert all(entry["observed_at"] == START + STEP for entry in large.values())
    # A dashboard reads its own target only, with the same values.
    key = (first.service_id, first.environment_id)
    with django_assert_num_queries(1):
        one = selectors.latest_by_target(service=first.service_id, environment=first.environment)
    assert one == {key: large[key]}


def test_poll_queries_do_not_grow_with_the_fleet(
    make_live, settings, django_assert_max_num_queries
):
    settings.METRICS_BACKEND = "demo"
    for i in range(3):
        make_live(f"svc-{i}", "prod")
    metrics_poll(now=START)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as small:
        metrics_poll(now=START + STEP)
    for i in range(3, 30):
        make_live(f"svc-{i}", "prod")
    metrics_poll(now=START + 2 * STEP)
    with CaptureQueriesContext(connection) as large:
        metrics_poll(now=START + 3 * STEP)

    def reads(captured):
        return [q for q in captured.captured_queries if q["sql"].startswith("SELECT")]

    # Reads are the same; writes are batched (SQLite's parameter limit makes more
    # batches for more rows, PostgreSQL's 5,000-row batches do not here).
    assert len(reads(large)) == len(reads(small))
    assert len(large.captured_queries) <= len(small.captured_queries) + 4 < 30


def test_source_health_reports_never_polled_failing_and_old(db, settings):
    settings.METRICS_BACKEND = "prometheus"
    settings.METRICS_COST_BACKEND = ""
    now = START
    statuses = {s.source: s for s in selectors.source_health(now=now)}
    assert set(statuses) == {"prometheus", "drift"}
    assert statuses["prometheus"].is_stale
    assert "not polled yet" in statuses["prometheus"].message
    SourceHealth.objects.create(source="prometheus", last_success_at=now - timedelta(seconds=60))
    SourceHealth.objects.create(
        source="drift",
        last_success_at=now - timedelta(minutes=10),
        consecutive_failures=0,
    )
    stale = [s.source for s in selectors.stale_sources(now=now)]
    assert stale == ["drift"]  # older than 3 polls (90 s)
