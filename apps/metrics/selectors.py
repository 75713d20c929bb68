"""Reads for the dashboards, the release page and the poll. Every selector runs a fixed
number of queries whatever the size of the fleet (the tests count them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import connection
from django.db.models import Avg, BigIntegerField, Count, Func, Max, Min, Q
from django.utils import timezone

from apps.metrics import conf
from apps.metrics.catalog import SLO_METRICS, Metric, format_value
from apps.metrics.downsample import lttb
from apps.metrics.models import (
    GuardDecision,
    MetricLatest,
    MetricRollup,
    MetricSample,
    Resolution,
    SloEvent,
    SloState,
    SourceHealth,
)
from apps.metrics.sources import configured_source_names
from apps.metrics.sources.base import MetricsConfigError, Target
from apps.releases.models import Release, ReleaseState, ServiceEnvironment

# --- what the poll polls ----------------------------------------------------------------


@dataclass(frozen=True)
class LiveTarget:
    target: Target  # plain values for the sources
    release: Release  # the live release, with service, environment and model version


def _slo_of(service, target: ServiceEnvironment | None) -> dict[str, float | None]:
    if target is not None:
        return target.slo()
    return {name: getattr(service, f"slo_{name}") for name in SLO_METRICS}


def poll_targets() -> list[LiveTarget]:
    """Every live release with what the sources and the SLO judge need (two queries)."""
    releases = (
        Release.objects.filter(state=ReleaseState.LIVE)
        .select_related("service", "environment", "model_version")
        .order_by("environment__order", "service__name")
    )
    overrides = {
        (t.service_id, t.environment_id): t
        for t in ServiceEnvironment.objects.select_related("service")
    }
    out = []
    for release in releases:
        version = release.model_version
        out.append(
            LiveTarget(
                target=Target(
                    service=release.service.name,
                    environment=release.environment.name,
                    runtime=release.service.runtime,
                    release_id=release.pk,
                    model_version=str(version),
                    model_tags={str(k): str(v) for k, v in (version.tags or {}).items()},
                    score_baseline=version.score_baseline,
                    config=release.config or {},
                    live_at=release.live_at,
                    # Effective thresholds (ServiceEnvironment.slo()), for the sources
                    # and the SLO judge.
                    slo=_slo_of(
                        release.service,
                        overrides.get((release.service_id, release.environment_id)),
                    ),
                ),
                release=release,
            )
        )
    return out


# --- fleet overview ---------------------------------------------------------------------


def latest_by_target(
    *, max_age: timedelta | None = None, now: datetime | None = None
) -> dict[tuple[int, int], dict]:
    """{(service_id, environment_id): {metric: value, ..., "observed_at": datetime}}.

    One query. ``observed_at`` is the newest reading's time for the target. With
    ``max_age``, values older than that are left out (a source that has been down shows
    as missing values, not as old ones passed off as current).
    """
    rows = MetricLatest.objects.values_list(
        "service_id", "environment_id", "metric", "value", "time"
    )
    if max_age is not None:
        rows = rows.filter(time__gte=(now or timezone.now()) - max_age)
    out: dict[tuple[int, int], dict] = {}
    for service_id, environment_id, metric, value, time in rows:
        entry = out.setdefault((service_id, environment_id), {"observed_at": time})
        entry[metric] = value
        if time > entry["observed_at"]:
            entry["observed_at"] = time
    return out


def slo_status_by_target(*, now: datetime | None = None) -> dict[tuple[int, int], dict[str, str]]:
    """{(service_id, environment_id): {metric: "ok" | "breach" | "unknown"}} for every
    metric with an SLO (p95 latency, error rate, cost per day, drift). Two queries.

    "breach": K bad polls in a row and not recovered since. "unknown": an SLO is set but
    there is no recent judgement (nothing live, a new release still settling, or the
    source stale). Metrics without an SLO are left out.
    """
    now = now or timezone.now()
    stale_after = timedelta(seconds=conf.get("METRICS_STALE_AFTER_SECONDS"))
    states = {(s.service_id, s.environment_id, s.metric): s for s in SloState.objects.all()}
    out: dict[tuple[int, int], dict[str, str]] = {}
    for target in ServiceEnvironment.objects.select_related("service"):
        statuses = {}
        for slo_key, metric in SLO_METRICS.items():
            if target.slo()[slo_key] is None:
                continue
            state = states.get((target.service_id, target.environment_id, metric))
            if state is None or state.last_evaluated_at is None:
                statuses[metric] = "unknown"
            elif state.in_breach:
                statuses[metric] = "breach"
            elif now - state.last_evaluated_at > stale_after:
                statuses[metric] = "unknown"
            else:
                statuses[metric] = "ok"
        if statuses:
            out[(target.service_id, target.environment_id)] = statuses
    return out


@dataclass(frozen=True)
class Breach:
    """An SLO in breach now: since when (the first bad poll of the streak), the value
    and the threshold, for "p95 324 ms — breaching SLO 250 ms since 03:39"."""

    metric: str
    since: datetime | None
    value: float | None
    threshold: float | None


def breaches_by_target() -> dict[tuple[int, int], dict[str, Breach]]:
    """{(service_id, environment_id): {metric: Breach}} for every SLO in breach. One query."""
    out: dict[tuple[int, int], dict[str, Breach]] = {}
    for state in SloState.objects.filter(in_breach=True):
        out.setdefault((state.service_id, state.environment_id), {})[state.metric] = Breach(
            metric=state.metric,
            since=state.breach_started_at or state.streak_since,
            value=state.last_value,
            threshold=state.threshold,
        )
    return out


def breach_windows(
    *, service, environment, start: datetime, end: datetime
) -> list[tuple[str, datetime, datetime | None]]:
    """(metric, started, ended or None while it lasts) of every breach overlapping
    ``start``..``end``, from the breach and recovery events. One query."""
    events = SloEvent.objects.filter(
        service_id=_id(service), environment_id=_id(environment), time__lte=end
    ).order_by("time", "id")
    opened: dict[str, datetime] = {}
    windows = []
    for event in events.only("metric", "kind", "started_at", "time"):
        if event.kind == "breach":
            opened.setdefault(event.metric, event.started_at)
        elif event.metric in opened:
            began = opened.pop(event.metric)
            if event.started_at >= start:
                windows.append((event.metric, began, event.started_at))
    windows.extend((metric, began, None) for metric, began in opened.items())
    return sorted(windows, key=lambda w: w[1])


def live_version(*, service_id: int | None = None, environment_id: int | None = None) -> tuple:
    """What changes when a metrics poll lands: the newest sample time and the SLO
    judgements (breach count, last evaluation). For live pages' 304 answers. One query
    per table, each on a table with one row per target and metric."""
    latest = MetricLatest.objects.all()
    states = SloState.objects.all()
    if service_id is not None:
        latest = latest.filter(service_id=service_id, environment_id=environment_id)
        states = states.filter(service_id=service_id, environment_id=environment_id)
    newest = latest.aggregate(t=Max("time"))["t"]
    judged = states.aggregate(
        t=Max("last_evaluated_at"), breaching=Count("id", filter=Q(in_breach=True))
    )
    return (newest, judged["t"], judged["breaching"])


# --- charts -----------------------------------------------------------------------------


def _id(value) -> int:
    return value if isinstance(value, int) else value.pk


def chart_resolution(start: datetime, end: datetime) -> int | None:
    """None (raw samples) for short ranges, else the roll-up resolution in seconds."""
    span = end - start
    if span <= timedelta(hours=conf.get("METRICS_CHART_RAW_MAX_HOURS")):
        return None
    if span <= timedelta(hours=conf.get("METRICS_CHART_5M_MAX_HOURS")):
        return Resolution.FIVE_MINUTES
    return Resolution.ONE_HOUR


class EpochMicroseconds(Func):
    """A PostgreSQL timestamptz as integer microseconds since the epoch."""

    output_field = BigIntegerField()
    template = "(EXTRACT(EPOCH FROM %(expressions)s) * 1000000)::bigint"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _series_rows(queryset, time_field: str, *value_fields: str) -> list[tuple]:
    """(time, *values) rows of ``queryset``. On PostgreSQL the time comes back as integer
    microseconds: Django parses every timestamptz it fetches in Python (~14 us a row, 0.3 s
    of a 24 h dashboard), and the charts need only the <= 1,000 times LTTB keeps, which
    ``_as_datetime`` converts afterwards."""
    if connection.vendor == "postgresql":
        return list(queryset.values_list(EpochMicroseconds(time_field), *value_fields))
    return list(queryset.values_list(time_field, *value_fields))


def _as_datetime(value) -> datetime:
    return value if isinstance(value, datetime) else _EPOCH + timedelta(microseconds=value)


def chart_series(
    *,
    service,
    environment,
    metric: str,
    start: datetime,
    end: datetime,
    max_points: int = 1000,
) -> list[tuple[datetime, float]]:
    """One metric of one target between ``start`` and ``end``, oldest first, at most
    ``max_points`` points: raw samples for ranges up to METRICS_CHART_RAW_MAX_HOURS,
    5-minute roll-up averages up to METRICS_CHART_5M_MAX_HOURS, hourly averages beyond,
    then LTTB so peaks survive the cut. One query. ``service`` and ``environment`` may
    be instances or ids."""
    resolution = chart_resolution(start, end)
    if resolution is None:
        samples = MetricSample.objects.filter(
            service_id=_id(service),
            environment_id=_id(environment),
            metric=metric,
            time__gte=start,
            time__lte=end,
        ).order_by("time")
        points = _series_rows(samples, "time", "value")
    else:
        rollups = MetricRollup.objects.filter(
            service_id=_id(service),
            environment_id=_id(environment),
            metric=metric,
            resolution=resolution,
            bucket_start__gte=start - timedelta(seconds=resolution),
            bucket_start__lte=end,
        ).order_by("bucket_start")
        points = [
            (bucket, total / count)
            for bucket, total, count in _series_rows(rollups, "bucket_start", "sum", "count")
            if count
        ]
    return [(_as_datetime(when), value) for when, value in lttb(points, max_points)]


# --- source health ----------------------------------------------------------------------

SOURCE_LABELS = {
    "prometheus": "Prometheus (latency, errors, requests)",
    "drift": "Drift (prediction scores from Prometheus)",
    "cost": "Cost (cluster resource requests)",
    "demo": "Demo cluster simulator",
    "configuration": "Metrics configuration",
}


@dataclass(frozen=True)
class SourceStatus:
    source: str
    label: str
    is_stale: bool
    last_success_at: datetime | None
    last_attempt_at: datetime | None
    last_error: str
    consecutive_failures: int
    next_attempt_at: datetime | None
    configuration_error: bool

    @property
    def message(self) -> str:
        """One sentence for a banner."""
        if not self.is_stale:
            return f"{self.label}: up to date."
        if self.last_attempt_at is None and not self.last_error:
            return f"{self.label}: not polled yet; no figures so far."
        when = (
            f" Last good data {timezone.localtime(self.last_success_at):%Y-%m-%d %H:%M}."
            if self.last_success_at
            else " No good data yet."
        )
        if not self.consecutive_failures:
            # The source never failed: nobody asked it lately. That points at the Celery
            # worker or beat, not at the source, and on-call should look there.
            return (
                f"{self.label} has not been polled recently; figures are stale.{when}"
                " Check that the Celery worker and beat are running."
            )
        what = "misconfigured" if self.configuration_error else "not answering"
        error = f" {self.last_error}" if self.last_error else ""
        return f"{self.label} is {what}; figures are stale.{when}{error}"


def source_health(*, now: datetime | None = None) -> list[SourceStatus]:
    """The configured sources and whether their data is stale (failing, never read, or
    not read for METRICS_STALE_AFTER_SECONDS). One query."""
    now = now or timezone.now()
    stale_after = timedelta(seconds=conf.get("METRICS_STALE_AFTER_SECONDS"))
    try:
        names = configured_source_names()
    except MetricsConfigError as exc:
        return [
            SourceStatus(
                source="configuration",
                label=SOURCE_LABELS["configuration"],
                is_stale=True,
                last_success_at=None,
                last_attempt_at=None,
                last_error=str(exc),
                consecutive_failures=0,
                next_attempt_at=None,
                configuration_error=True,
            )
        ]
    rows = {row.source: row for row in SourceHealth.objects.filter(source__in=names)}
    out = []
    for name in names:
        row = rows.get(name) or SourceHealth(source=name)
        out.append(
            SourceStatus(
                source=name,
                label=SOURCE_LABELS.get(name, name),
                is_stale=row.is_stale(now=now, stale_after=stale_after),
                last_success_at=row.last_success_at,
                last_attempt_at=row.last_attempt_at,
                last_error=row.last_error if row.consecutive_failures else "",
                consecutive_failures=row.consecutive_failures,
                next_attempt_at=row.next_attempt_at,
                configuration_error=row.configuration_error and row.consecutive_failures > 0,
            )
        )
    return out


def stale_sources(*, now: datetime | None = None) -> list[SourceStatus]:
    return [status for status in source_health(now=now) if status.is_stale]


# --- the release page -------------------------------------------------------------------


@dataclass(frozen=True)
class EvidenceRow:
    metric: str
    label: str
    threshold: float | None
    samples: int
    avg: float | None
    max: float | None
    min: float | None
    over: int  # polls whose value was over the SLO

    @property
    def status(self) -> str:
        if self.threshold is None:
            return "no SLO"
        if not self.samples:
            return "no data"
        return "over SLO" if self.over else "within SLO"

    def fmt(self, value) -> str:
        return format_value(self.metric, value)

    @property
    def threshold_text(self) -> str:
        return "—" if self.threshold is None else format_value(self.metric, self.threshold)

    @property
    def avg_text(self) -> str:
        return format_value(self.metric, self.avg)

    @property
    def max_text(self) -> str:
        return format_value(self.metric, self.max)


EVIDENCE_METRICS = (
    Metric.LATENCY_P95_MS,
    Metric.ERROR_RATE,
    Metric.REQUEST_RATE,
    Metric.COST_PER_DAY,
    Metric.DRIFT_PSI,
)


def effective_slo(release: Release) -> dict[str, float | None]:
    """The thresholds of the release's service in its environment, by metric name."""
    target = (
        ServiceEnvironment.objects.select_related("service")
        .filter(service_id=release.service_id, environment_id=release.environment_id)
        .first()
    )
    slo = _slo_of(release.service, target)
    return {metric: slo[key] for key, metric in SLO_METRICS.items()}


def release_evidence(release: Release) -> list[EvidenceRow]:
    """What the metrics said while ``release`` was live, per metric, against its SLOs:
    polls, average, maximum and how many polls were over. Two queries."""
    thresholds = effective_slo(release)
    aggregates = {}
    for metric in EVIDENCE_METRICS:
        only = Q(metric=metric)
        aggregates[f"{metric}__n"] = Count("id", filter=only)
        aggregates[f"{metric}__avg"] = Avg("value", filter=only)
        aggregates[f"{metric}__max"] = Max("value", filter=only)
        aggregates[f"{metric}__min"] = Min("value", filter=only)
        threshold = thresholds.get(metric)
        if threshold is not None:
            aggregates[f"{metric}__over"] = Count("id", filter=only & Q(value__gt=threshold))
    values = MetricSample.objects.filter(
        release_id=release.pk, metric__in=EVIDENCE_METRICS
    ).aggregate(**aggregates)
    return [
        EvidenceRow(
            metric=metric,
            label=Metric(metric).label,
            threshold=thresholds.get(metric),
            samples=values[f"{metric}__n"] or 0,
            avg=values[f"{metric}__avg"],
            max=values[f"{metric}__max"],
            min=values[f"{metric}__min"],
            over=values.get(f"{metric}__over") or 0,
        )
        for metric in EVIDENCE_METRICS
    ]


def release_slo_events(release_ids) -> list[SloEvent]:
    return list(
        SloEvent.objects.filter(release_id__in=list(release_ids)).order_by("time", "id")[:200]
    )


def guard_decisions(release_ids) -> dict[int, GuardDecision]:
    return {
        d.release_id: d
        for d in GuardDecision.objects.filter(release_id__in=list(release_ids)).select_related(
            "rollback"
        )
    }
