"""Roll-ups and retention: 5-minute buckets from raw samples, hourly buckets from the
5-minute ones, and batched deletion of whatever is past its retention.

Both run as their own beat tasks, apart from the poll, and are safe to run twice or late:
a bucket is always recomputed whole and upserted, and deletion only ever removes rows
older than a cutoff.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.db.models import Aggregate, Count, Max, Min, OuterRef, QuerySet, Subquery, Sum
from django.utils import timezone

from apps.metrics import conf
from apps.metrics.models import MetricRollup, MetricSample, Resolution
from apps.metrics.services._batch import WRITE_BATCH

# --- roll-ups ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Level:
    """Where one roll-up resolution is computed from: the rows of the level below that
    fall in a bucket, and which of their columns give its min, max, sum, count and last
    value (an hour's min is the min of its 5-minute mins, its count their summed counts)."""

    rows: Callable[[datetime, datetime], QuerySet]
    newest_first: tuple[str, ...]
    min: str
    max: str
    sum: str
    count: Aggregate
    last: str


_LEVELS = {
    Resolution.FIVE_MINUTES: _Level(
        rows=lambda start, end: MetricSample.objects.filter(time__gte=start, time__lt=end),
        newest_first=("-time", "-id"),
        min="value",
        max="value",
        sum="value",
        count=Count("id"),
        last="value",
    ),
    Resolution.ONE_HOUR: _Level(
        rows=lambda start, end: MetricRollup.objects.filter(
            resolution=Resolution.FIVE_MINUTES, bucket_start__gte=start, bucket_start__lt=end
        ),
        newest_first=("-bucket_start",),
        min="min",
        max="max",
        sum="sum",
        count=Sum("count"),
        last="last",
    ),
}


def metrics_rollup(*, now: datetime | None = None) -> dict[str, int]:
    """Bring the 5-minute and 1-hour roll-ups up to date.

    Recomputes each bucket from scratch (raw samples for 5 minutes, 5-minute roll-ups for
    hours) and upserts it, so running twice, late or after a crash changes nothing. It
    starts at the newest bucket already rolled up (which may have been partial), one
    bucket earlier for late rows, and catches up at most
    METRICS_ROLLUP_MAX_BUCKETS_PER_RUN buckets per run.
    """
    now = now or timezone.now()
    limit = int(conf.get("METRICS_ROLLUP_MAX_BUCKETS_PER_RUN"))
    done = {"5m": 0, "1h": 0, "rows": 0}

    five = Resolution.FIVE_MINUTES
    newest = MetricRollup.objects.filter(resolution=five).aggregate(m=Max("bucket_start"))["m"]
    start = newest - timedelta(seconds=five) if newest else _oldest_sample()
    if start is not None:
        for bucket in _buckets(start, now, five, limit):
            done["rows"] += _rollup_bucket(five, bucket)
            done["5m"] += 1

    hour = Resolution.ONE_HOUR
    newest = MetricRollup.objects.filter(resolution=hour).aggregate(m=Max("bucket_start"))["m"]
    start = (
        newest or MetricRollup.objects.filter(resolution=five).aggregate(m=Min("bucket_start"))["m"]
    )
    if start is not None:
        for bucket in _buckets(start, now, hour, limit):
            done["rows"] += _rollup_bucket(hour, bucket)
            done["1h"] += 1
    return done


def _floor(moment: datetime, seconds: int) -> datetime:
    epoch = int(moment.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, tz=moment.tzinfo or UTC)


def _oldest_sample() -> datetime | None:
    return MetricSample.objects.order_by("time").values_list("time", flat=True).first()


def _buckets(start: datetime, now: datetime, seconds: int, limit: int) -> list[datetime]:
    bucket, last = _floor(start, seconds), _floor(now, seconds)
    out = []
    while bucket <= last and len(out) < limit:
        out.append(bucket)
        bucket += timedelta(seconds=seconds)
    return out


def _rollup_bucket(resolution: int, start: datetime) -> int:
    """Recompute the bucket of ``resolution`` starting at ``start`` from the level below,
    one row per service, environment and metric, and upsert it. Returns the rows written."""
    level = _LEVELS[resolution]
    window = level.rows(start, start + timedelta(seconds=resolution))
    newest = window.filter(
        service_id=OuterRef("service_id"),
        environment_id=OuterRef("environment_id"),
        metric=OuterRef("metric"),
    ).order_by(*level.newest_first)
    rows = (
        window.order_by()
        .values("service_id", "environment_id", "metric")
        .annotate(
            mn=Min(level.min),
            mx=Max(level.max),
            total=Sum(level.sum),
            n=level.count,
            newest=Subquery(newest.values(level.last)[:1]),
        )
    )
    objects = [
        MetricRollup(
            service_id=row["service_id"],
            environment_id=row["environment_id"],
            metric=row["metric"],
            resolution=resolution,
            bucket_start=start,
            min=row["mn"],
            max=row["mx"],
            sum=row["total"],
            count=row["n"],
            last=row["newest"],
        )
        for row in rows
    ]
    MetricRollup.objects.bulk_create(
        objects,
        batch_size=WRITE_BATCH,
        update_conflicts=True,
        unique_fields=["service", "environment", "metric", "resolution", "bucket_start"],
        update_fields=["min", "max", "sum", "count", "last"],
    )
    return len(objects)


# --- retention --------------------------------------------------------------------------


def metrics_retention(*, now: datetime | None = None) -> dict[str, int]:
    """Delete raw samples older than METRICS_RAW_RETENTION_DAYS, and roll-ups past their
    own retention, in batches of METRICS_RETENTION_BATCH rows so no statement holds
    locks on millions of rows or fills the WAL in one go. Returns rows deleted per kind."""
    now = now or timezone.now()
    batch = int(conf.get("METRICS_RETENTION_BATCH"))
    deleted = {
        "samples": _delete_before(
            MetricSample.objects.all(),
            "time",
            now - timedelta(days=conf.get("METRICS_RAW_RETENTION_DAYS")),
            batch,
        )
    }
    for resolution, setting, key in (
        (Resolution.FIVE_MINUTES, "METRICS_ROLLUP_5M_RETENTION_DAYS", "rollups_5m"),
        (Resolution.ONE_HOUR, "METRICS_ROLLUP_1H_RETENTION_DAYS", "rollups_1h"),
    ):
        deleted[key] = _delete_before(
            MetricRollup.objects.filter(resolution=resolution),
            "bucket_start",
            now - timedelta(days=conf.get(setting)),
            batch,
        )
    return deleted


def _delete_before(queryset, field_name: str, cutoff: datetime, batch: int) -> int:
    total = 0
    old = queryset.filter(**{f"{field_name}__lt": cutoff}).order_by()
    while True:
        ids = list(old.values_list("id", flat=True)[:batch])
        if not ids:
            return total
        # No signals or cascades on these models: Django deletes with one DELETE ... IN.
        with transaction.atomic():
            count, _ = queryset.model.objects.filter(id__in=ids).delete()
        total += count
