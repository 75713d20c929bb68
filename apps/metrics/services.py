"""Metrics actions: a poll cycle and what follows from it (SLO state, breach and recovery
events, the auto-rollback guard), roll-ups, and retention.

A poll cycle reads every source *outside* any transaction (HTTP to Prometheus or the
cluster must never hold database locks), then writes what it read in one transaction:
samples, the latest values, the sources' health, SLO state and events with their audit
rows. The guard runs after that commits, one release at a time, each decision in its own
transaction with the rollback it makes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Count, Max, Min, OuterRef, Subquery, Sum
from django.utils import timezone

from apps.audit.services import audit_record
from apps.core.backoff import backoff_delay
from apps.metrics import conf
from apps.metrics.catalog import METRIC_NAMES, SLO_METRICS, Metric, format_value
from apps.metrics.models import (
    GuardDecision,
    GuardOutcome,
    MetricLatest,
    MetricRollup,
    MetricSample,
    Resolution,
    SloEvent,
    SloEventKind,
    SloState,
    SourceHealth,
)
from apps.metrics.selectors import LiveTarget, poll_targets
from apps.metrics.sources import (
    MetricsConfigError,
    Reading,
    Source,
    SourceError,
    build_source,
    configured_source_names,
)

log = logging.getLogger(__name__)

GUARD_ACTOR = "auto-rollback-guard"
METRICS_ACTOR = "metrics"
WRITE_BATCH = 5000


@dataclass
class SourceRun:
    source: str
    ok: bool = False
    skipped: bool = False  # backing off after failures
    readings: int = 0
    requests: int = 0
    error: str = ""
    configuration_error: bool = False
    seconds: float = 0.0


@dataclass
class PollResult:
    at: datetime
    targets: int = 0
    sources: list[SourceRun] = field(default_factory=list)
    samples_written: int = 0
    events: list[SloEvent] = field(default_factory=list)
    guard: list[GuardDecision] = field(default_factory=list)

    @property
    def requests_sent(self) -> int:
        return sum(run.requests for run in self.sources)


# --- the poll ---------------------------------------------------------------------------


def metrics_poll(
    *, now: datetime | None = None, sources: Sequence[Source] | None = None
) -> PollResult:
    """One poll cycle: read every configured source for every live release, store the
    readings, judge SLOs, and let the guard act on sustained breaches during bake.

    A source that fails stores nothing this cycle and is marked stale, and backs off:
    after n failures in a row it is next asked 2^(n-1) polls later (at most
    METRICS_BACKOFF_MAX_SECONDS later). ``sources`` replaces the configured ones.
    Callers make sure cycles do not overlap (the task takes a single-flight lock).
    """
    now = now or timezone.now()
    live = poll_targets()
    result = PollResult(at=now, targets=len(live))
    targets = [item.target for item in live]
    by_key = {item.target.key: item for item in live}

    if sources is None:
        try:
            names = configured_source_names()
        except MetricsConfigError as exc:
            log.error("metrics poll: %s", exc)
            names, sources = [], []
            result.sources.append(SourceRun(source="configuration", error=str(exc)))
    else:
        names = [source.name for source in sources]
    health = {h.source: h for h in SourceHealth.objects.filter(source__in=names)}
    provided = {source.name: source for source in sources or []}

    readings: dict[tuple[str, str, str], Reading] = {}
    for name in names:
        row = health.get(name) or SourceHealth(source=name)
        health[name] = row
        run = SourceRun(source=name)
        result.sources.append(run)
        if _backing_off(row, now):
            run.skipped = True
            run.error = row.last_error
            continue
        got = _read_source(name, provided.get(name), targets, now, run)
        _record_health(row, run, now)
        for reading in got if run.ok else []:
            if _acceptable(reading, by_key):
                readings[(reading.service, reading.environment, reading.metric)] = reading
        run.readings = len(got) if run.ok else 0
    for reading in derived_readings(readings.values()):
        readings[(reading.service, reading.environment, reading.metric)] = reading

    with transaction.atomic():
        result.samples_written = _store(readings.values(), by_key)
        for row in health.values():
            if row.last_attempt_at == now:
                row.save()
        result.events, breached = _judge_slos(live, readings, now)

    by_release = {item.release.pk: item for item in live}
    for release_id, states in breached.items():
        try:
            decision = guard_consider(live=by_release[release_id], breaches=states, now=now)
        except Exception:  # one release's trouble must not keep the guard from the others
            log.exception("auto-rollback guard failed on release #%s", release_id)
            continue
        if decision is not None:
            result.guard.append(decision)
    return result


def _backing_off(row: SourceHealth, now: datetime) -> bool:
    if row.next_attempt_at is None:
        return False
    slack = timedelta(seconds=0.1 * conf.get("METRICS_POLL_SECONDS"))  # beat's own jitter
    return now + slack < row.next_attempt_at


def _read_source(name, source, targets, now, run: SourceRun) -> list[Reading]:
    started = timezone.now()
    try:
        source = source or build_source(name)
    except MetricsConfigError as exc:
        run.error = str(exc)
        run.configuration_error = True
        log.error("metrics source %s: %s", name, exc)
        return []
    except Exception as exc:
        log.exception("metrics source %s could not be set up", name)
        run.error = f"{type(exc).__name__}: {exc}"[:2000]
        return []
    try:
        got = source.poll(targets, at=now)
        run.ok = True
        return got
    except SourceError as exc:
        run.error = str(exc)
        run.configuration_error = isinstance(exc, MetricsConfigError)
        (log.error if isinstance(exc, MetricsConfigError) else log.warning)(
            "metrics source %s: %s", name, exc
        )
        return []
    except Exception as exc:  # a bug in one source must not stop the others
        log.exception("metrics source %s failed", name)
        run.error = f"{type(exc).__name__}: {exc}"[:2000]
        return []
    finally:
        run.requests = getattr(source, "requests_sent", 0) or 0
        run.seconds = (timezone.now() - started).total_seconds()
        if hasattr(source, "close"):
            source.close()


def _record_health(row: SourceHealth, run: SourceRun, now: datetime) -> None:
    row.last_attempt_at = now
    row.last_requests = run.requests
    if run.ok:
        row.last_success_at = now
        row.consecutive_failures = 0
        row.next_attempt_at = None
        row.configuration_error = False
        return
    row.consecutive_failures += 1
    row.last_error = run.error[:4000]
    row.last_error_at = now
    row.configuration_error = run.configuration_error
    # Next tried 1, 2, 4, 8 ... polls later (at most METRICS_BACKOFF_MAX_SECONDS).
    delay = backoff_delay(
        row.consecutive_failures,
        base=conf.get("METRICS_POLL_SECONDS"),
        cap=conf.get("METRICS_BACKOFF_MAX_SECONDS"),
    )
    row.next_attempt_at = now + timedelta(seconds=delay)


def _acceptable(reading: Reading, by_key) -> bool:
    return (
        (reading.service, reading.environment) in by_key
        and reading.metric in METRIC_NAMES
        and isinstance(reading.value, int | float)
        and math.isfinite(reading.value)
    )


def derived_readings(readings: Iterable[Reading]) -> list[Reading]:
    """Cost per 1,000 predictions, where cost per hour and a non-zero request rate were
    both read this cycle: cost_per_hour / (requests per hour / 1000)."""
    cost, rate = {}, {}
    for r in readings:
        if r.metric == Metric.COST_PER_HOUR:
            cost[(r.service, r.environment)] = r
        elif r.metric == Metric.REQUEST_RATE:
            rate[(r.service, r.environment)] = r
    out = []
    for key, c in cost.items():
        r = rate.get(key)
        if r is None or r.value <= 0:
            continue
        out.append(
            Reading(
                service=c.service,
                environment=c.environment,
                metric=Metric.COST_PER_1K_PREDICTIONS,
                value=c.value / (r.value * 3.6),
                time=c.time,
                window_seconds=r.window_seconds,
            )
        )
    return out


def _store(readings: Iterable[Reading], by_key: dict[tuple[str, str], LiveTarget]) -> int:
    samples, latest = [], []
    for r in readings:
        item = by_key[(r.service, r.environment)]
        ids = {
            "service_id": item.release.service_id,
            "environment_id": item.release.environment_id,
            "release_id": item.release.pk,
            "metric": r.metric,
            "time": r.time,
            "value": float(r.value),
        }
        samples.append(MetricSample(**ids))
        latest.append(MetricLatest(**ids))
    MetricSample.objects.bulk_create(samples, batch_size=WRITE_BATCH)
    MetricLatest.objects.bulk_create(
        latest,
        batch_size=WRITE_BATCH,
        update_conflicts=True,
        unique_fields=["service", "environment", "metric"],
        update_fields=["release", "time", "value"],
    )
    return len(samples)


# --- SLOs -------------------------------------------------------------------------------


def _judge_slos(
    live: Sequence[LiveTarget], readings: dict[tuple[str, str, str], Reading], now: datetime
) -> tuple[list[SloEvent], dict[int, list[SloState]]]:
    """Advance every target's SLO streaks with this cycle's readings; breach after K bad
    polls in a row, recover after R good ones. Returns the events and, per release, the
    SLOs currently in breach (what the guard looks at).

    A poll without a reading for a metric (source down, no traffic) is no evidence either
    way: the streak neither grows nor breaks. Streaks belong to the live release: when it
    changes they start over, so one release is never judged on another's numbers; and a
    reading whose window reaches back before the release went live is not judged at all.
    """
    breach_after = int(conf.get("METRICS_SLO_BREACH_POLLS"))
    recover_after = int(conf.get("METRICS_SLO_RECOVERY_POLLS"))
    known = {(s.service_id, s.environment_id, s.metric): s for s in SloState.objects.all()}
    states, events, breached = [], [], {}
    for item in live:
        release = item.release
        for slo_key, metric in SLO_METRICS.items():
            threshold = item.target.slo.get(slo_key)
            key = (release.service_id, release.environment_id, metric)
            state = known.get(key)
            if state is None:
                if threshold is None:
                    continue
                state = SloState(
                    service_id=key[0], environment_id=key[1], metric=metric, release_id=release.pk
                )
            if state.release_id != release.pk or threshold is None:
                _restart(state, release.pk)
            state.threshold = threshold
            reading = readings.get((item.target.service, item.target.environment, metric))
            if threshold is not None and reading is not None and _judgeable(reading, release):
                event = _advance(state, reading.value, now, breach_after, recover_after)
                if event is not None:
                    event.release = release
                    events.append(event)
            if state.in_breach:
                breached.setdefault(release.pk, []).append(state)
            state.pk = None  # written with an upsert below
            states.append(state)
            known.pop(key, None)
    # Targets with nothing live any more: their judgements no longer describe anything.
    for state in known.values():
        if state.in_breach or state.last_evaluated_at is not None:
            _restart(state, None)
            state.pk = None
            states.append(state)
    SloState.objects.bulk_create(
        states,
        batch_size=WRITE_BATCH,
        update_conflicts=True,
        unique_fields=["service", "environment", "metric"],
        update_fields=[
            "release",
            "threshold",
            "last_value",
            "last_evaluated_at",
            "consecutive_bad",
            "consecutive_good",
            "streak_since",
            "in_breach",
            "breach_started_at",
        ],
    )
    if events:
        SloEvent.objects.bulk_create(events)
        for event in events:
            _audit_event(event)
    return events, breached


def _restart(state: SloState, release_id: int) -> None:
    state.release_id = release_id
    state.consecutive_bad = state.consecutive_good = 0
    state.streak_since = None
    state.in_breach = False
    state.breach_started_at = None
    state.last_value = None
    state.last_evaluated_at = None


def _judgeable(reading: Reading, release) -> bool:
    if release.live_at is None:
        return True
    return reading.time - timedelta(seconds=reading.window_seconds) >= release.live_at


def _advance(
    state: SloState, value: float, now: datetime, breach_after: int, recover_after: int
) -> SloEvent | None:
    bad = value > state.threshold
    was_bad = state.consecutive_bad > 0
    state.last_value = value
    state.last_evaluated_at = now
    if bad:
        state.consecutive_good = 0
        state.consecutive_bad += 1
        if not was_bad:
            state.streak_since = now
        if not state.in_breach and state.consecutive_bad >= breach_after:
            state.in_breach = True
            state.breach_started_at = state.streak_since
            return _event(state, SloEventKind.BREACH, state.consecutive_bad, now)
        return None
    state.consecutive_bad = 0
    if was_bad or state.consecutive_good == 0:
        state.streak_since = now
    state.consecutive_good += 1
    if state.in_breach and state.consecutive_good >= recover_after:
        state.in_breach = False
        return _event(state, SloEventKind.RECOVERY, state.consecutive_good, now)
    return None


def _event(state: SloState, kind: str, polls: int, now: datetime) -> SloEvent:
    return SloEvent(
        service_id=state.service_id,
        environment_id=state.environment_id,
        metric=state.metric,
        kind=kind,
        value=state.last_value,
        threshold=state.threshold,
        polls=polls,
        started_at=state.streak_since or now,
        time=now,
    )


def _audit_event(event: SloEvent) -> None:
    audit_record(
        system_actor=METRICS_ACTOR,
        action=f"slo.{event.kind}",
        target_type="release",
        target_id=event.release_id,
        after={
            "service_id": event.service_id,
            "environment_id": event.environment_id,
            "metric": event.metric,
            "value": event.value,
            "threshold": event.threshold,
            "polls": event.polls,
            "since": event.started_at.isoformat(),
        },
    )


# --- the auto-rollback guard -------------------------------------------------------------


def guard_consider(
    *, live: LiveTarget, breaches: Sequence[SloState], now: datetime | None = None
) -> GuardDecision | None:
    """Roll back ``live.release`` if its environment asks for it (auto_rollback), it is
    within its bake window, and SLOs are in sustained breach (``breaches``).

    Decides at most once per release (a ``GuardDecision`` row, unique per release): it
    never rolls back a rollback, and holds (recording why) when no earlier good release
    is known; for a given live release neither answer can change later, so one recorded
    decision is the whole story. The rollback goes to the last good release, break-glass,
    with the numbers in its reason, and deploys once this transaction commits.
    """
    from apps.core.errors import Conflict
    from apps.releases.models import ReleaseKind
    from apps.releases.services import release_rollback, rollback_default_target

    now = now or timezone.now()
    release = live.release
    environment = release.environment
    if not environment.auto_rollback or not breaches or release.live_at is None:
        return None
    if not release.live_at <= now <= release.live_at + timedelta(minutes=environment.bake_minutes):
        return None
    if GuardDecision.objects.filter(release=release).exists():
        return None
    first = breaches[0]
    reason = _guard_reason(release, breaches, now)
    decision = GuardDecision(
        release=release,
        metric=first.metric,
        value=first.last_value,
        threshold=first.threshold,
        reason=reason,
        created_at=now,
    )
    try:
        with transaction.atomic():
            note = ""
            if release.kind == ReleaseKind.ROLLBACK:
                decision.outcome = GuardOutcome.SKIPPED_ROLLBACK
                note = "The live release is itself a rollback; the guard never rolls back one."
            elif rollback_default_target(release) is None:
                decision.outcome = GuardOutcome.HELD_UNKNOWN_PREVIOUS
                note = (
                    "No earlier good release (live, then superseded) is known to go back to; "
                    "the guard does nothing. Roll back by hand if needed."
                )
            else:
                try:
                    decision.rollback = release_rollback(
                        service=release.service,
                        environment=environment,
                        reason=reason,
                        system_actor=GUARD_ACTOR,
                        break_glass=True,
                        expected_live=release,
                    )
                    decision.outcome = GuardOutcome.ROLLED_BACK
                except Conflict as exc:
                    decision.outcome = GuardOutcome.REFUSED
                    note = str(exc)
            if note:
                decision.reason = f"{reason}\n{note}"
            decision.save()
            if decision.outcome != GuardOutcome.ROLLED_BACK:
                audit_record(
                    system_actor=GUARD_ACTOR,
                    action=f"guard.{decision.outcome}",
                    target_type="release",
                    target_id=release.pk,
                    after={"metric": first.metric, "reason": decision.reason},
                )
    except IntegrityError:
        # Another guard decided about this release first; its decision stands.
        return None
    log.warning("auto-rollback guard on release #%s: %s", release.pk, decision.outcome)
    return decision


def _guard_reason(release, breaches: Sequence[SloState], now: datetime) -> str:
    parts = []
    for state in breaches:
        since = state.breach_started_at or state.streak_since or now
        parts.append(
            f"{state.metric} {format_value(state.metric, state.last_value)} over SLO "
            f"{format_value(state.metric, state.threshold)} for {state.consecutive_bad} polls "
            f"(since {since:%H:%M:%S} UTC)"
        )
    minutes = int((now - release.live_at).total_seconds() // 60)
    return (
        "; ".join(parts)
        + f". Release #{release.pk} ({release.model_version}) went live {minutes} min ago; "
        f"{release.environment.name} bakes for {release.environment.bake_minutes} min and "
        "rolls back automatically."
    )


# --- roll-ups ---------------------------------------------------------------------------


def _floor(moment: datetime, seconds: int) -> datetime:
    epoch = int(moment.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, tz=moment.tzinfo or UTC)


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
            done["rows"] += _rollup_from_samples(bucket)
            done["5m"] += 1

    hour = Resolution.ONE_HOUR
    newest = MetricRollup.objects.filter(resolution=hour).aggregate(m=Max("bucket_start"))["m"]
    start = (
        newest or MetricRollup.objects.filter(resolution=five).aggregate(m=Min("bucket_start"))["m"]
    )
    if start is not None:
        for bucket in _buckets(start, now, hour, limit):
            done["rows"] += _rollup_from_rollups(bucket)
            done["1h"] += 1
    return done


def _oldest_sample() -> datetime | None:
    first = MetricSample.objects.order_by("time").values_list("time", flat=True).first()
    return first


def _buckets(start: datetime, now: datetime, seconds: int, limit: int) -> list[datetime]:
    bucket, last = _floor(start, seconds), _floor(now, seconds)
    out = []
    while bucket <= last and len(out) < limit:
        out.append(bucket)
        bucket += timedelta(seconds=seconds)
    return out


def _rollup_from_samples(start: datetime) -> int:
    end = start + timedelta(seconds=Resolution.FIVE_MINUTES)
    window = MetricSample.objects.filter(time__gte=start, time__lt=end)
    newest = window.filter(
        service_id=OuterRef("service_id"),
        environment_id=OuterRef("environment_id"),
        metric=OuterRef("metric"),
    ).order_by("-time", "-id")
    rows = (
        window.order_by()
        .values("service_id", "environment_id", "metric")
        .annotate(
            mn=Min("value"),
            mx=Max("value"),
            total=Sum("value"),
            n=Count("id"),
            newest=Subquery(newest.values("value")[:1]),
        )
    )
    return _upsert_rollups(rows, Resolution.FIVE_MINUTES, start)


def _rollup_from_rollups(start: datetime) -> int:
    end = start + timedelta(seconds=Resolution.ONE_HOUR)
    window = MetricRollup.objects.filter(
        resolution=Resolution.FIVE_MINUTES, bucket_start__gte=start, bucket_start__lt=end
    )
    newest = window.filter(
        service_id=OuterRef("service_id"),
        environment_id=OuterRef("environment_id"),
        metric=OuterRef("metric"),
    ).order_by("-bucket_start")
    rows = (
        window.order_by()
        .values("service_id", "environment_id", "metric")
        .annotate(
            mn=Min("min"),
            mx=Max("max"),
            total=Sum("sum"),
            n=Sum("count"),
            newest=Subquery(newest.values("last")[:1]),
        )
    )
    return _upsert_rollups(rows, Resolution.ONE_HOUR, start)


def _upsert_rollups(rows, resolution: int, start: datetime) -> int:
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
