"""The poll: read every configured source for every live release, store the readings,
keep each source's health (and back a failing one off), then hand the readings to SLO
judging and the breaches to the guard.

A cycle reads every source *outside* any transaction (HTTP to Prometheus or the cluster
must never hold database locks), all sources at the same time, then writes what it read
in two transactions running side by side on PostgreSQL: the observations (samples and
latest values) on a connection of their own, and the judgement (the sources' health,
SLO state, events with their audit rows and notifications) on the poll's. Each commits
all or nothing; inside a caller's transaction (tests) and on SQLite both are one. The
guard runs after the judgement commits, one release at a time, each decision in its own
transaction with the rollback it makes.
"""

from __future__ import annotations

import gc
import logging
import math
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from apps.audit.services import audited_atomic
from apps.core.backoff import backoff_delay
from apps.metrics import conf
from apps.metrics.catalog import FLEET_METRICS, METRIC_NAMES, Metric
from apps.metrics.models import GuardDecision, MetricLatest, MetricSample, SloEvent, SourceHealth
from apps.metrics.selectors import LiveTarget, poll_targets
from apps.metrics.services._rows import staged_rows
from apps.metrics.services.guard import guard_consider
from apps.metrics.services.slo import slo_judge
from apps.metrics.sources import (
    MetricsConfigError,
    Reading,
    Source,
    SourceError,
    build_source,
    configured_source_names,
)
from apps.releases.models import ServiceEnvironment

log = logging.getLogger(__name__)


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
    read_seconds: float = 0.0  # wall time of the read phase (sources read at the same time)
    observations_apart: bool = False  # samples and latest values on their own connection
    events: list[SloEvent] = field(default_factory=list)
    guard: list[GuardDecision] = field(default_factory=list)

    @property
    def requests_sent(self) -> int:
        return sum(run.requests for run in self.sources)


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
    with _gc_paused():
        return _poll(now=now or timezone.now(), sources=sources)


@contextmanager
def _gc_paused():
    """The cyclic garbage collector off for one cycle: a poll allocates hundreds of
    thousands of short-lived, acyclic objects (decoded JSON, row tuples), and every few
    hundred allocations set off a collection that also walks the long-lived heap, which
    cost about a third of the poll's CPU time. Reference counting still frees them."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _poll(*, now: datetime, sources: Sequence[Source] | None) -> PollResult:
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

    runs, due = [], []
    for name in names:
        row = health.get(name) or SourceHealth(source=name)
        health[name] = row
        run = SourceRun(source=name)
        runs.append((run, row))
        if _backing_off(row, now):
            run.skipped = True
            run.error = row.last_error
        else:
            due.append((name, run))
    result.sources += [run for run, _ in runs]
    started = time.perf_counter()
    got = _read_sources(due, provided, targets, now)
    result.read_seconds = time.perf_counter() - started

    readings: dict[tuple[str, str, str], Reading] = {}
    for run, row in runs:
        if run.skipped:
            continue
        _record_health(row, run, now)
        for reading in got[run.source] if run.ok else []:
            if _acceptable(reading, by_key):
                readings[(reading.service, reading.environment, reading.metric)] = reading
        run.readings = len(got[run.source]) if run.ok else 0
    for reading in derived_readings(readings.values()):
        readings[(reading.service, reading.environment, reading.metric)] = reading

    stored = _store_apart(list(readings.values()), by_key) if _observations_apart() else None
    result.observations_apart = stored is not None
    try:
        with audited_atomic():
            if stored is None:
                result.samples_written = _store(readings.values(), by_key)
            for row in health.values():
                if row.last_attempt_at == now:
                    row.save()
            result.events, breached = slo_judge(live=live, readings=readings, now=now)
    finally:
        # Waited for after the judgement's commit, never inside it: the judgement holds
        # the audit chain's lock, and nothing may wait on another connection under it.
        store_error = _wait(stored, result)

    by_release = {item.release_id: item for item in live}
    for release_id, states in breached.items():
        try:
            decision = guard_consider(live=by_release[release_id], breaches=states, now=now)
        except Exception:  # one release's trouble must not keep the guard from the others
            log.exception("auto-rollback guard failed on release #%s", release_id)
            continue
        if decision is not None:
            result.guard.append(decision)
    if store_error is not None:
        # The judgement and the guard stand; the cycle's samples and latest values are
        # not stored (their transaction rolled back), and the task reports it.
        raise store_error
    return result


def _observations_apart() -> bool:
    """Whether samples and latest values are written on a connection of their own, at the
    same time as the judgement: on PostgreSQL, when the poll is not inside a caller's
    transaction (a test's, say, which another connection could not see into)."""
    return connection.vendor == "postgresql" and not connection.in_atomic_block


def _store_apart(readings: list[Reading], by_key) -> Future:
    """``_store`` in a thread, on that thread's own connection and in its own transaction:
    PostgreSQL writes the samples and latest values (index upkeep for 90,000 rows at
    10,000 services) while this thread judges the SLOs. The two tables are observations;
    they need not commit with the judgement, and nothing in either transaction touches
    the other's rows (no lock between them)."""

    def run() -> int:
        try:
            with transaction.atomic():
                return _store(readings, by_key)
        finally:
            connection.close()  # this thread's connection, opened for this write

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="metrics-store")
    try:
        return pool.submit(run)
    finally:
        pool.shutdown(wait=False)


def _wait(stored: Future | None, result: PollResult) -> Exception | None:
    if stored is None:
        return None
    try:
        result.samples_written = stored.result()
    except Exception as exc:
        log.exception("metrics poll: storing the samples and latest values failed")
        return exc
    return None


def _backing_off(row: SourceHealth, now: datetime) -> bool:
    if row.next_attempt_at is None:
        return False
    slack = timedelta(seconds=0.1 * conf.get("METRICS_POLL_SECONDS"))  # beat's own jitter
    return now + slack < row.next_attempt_at


def _read_sources(due, provided, targets, now) -> dict[str, list[Reading]]:
    """Every due source read at the same time, one thread each: the poll waits for the
    slowest source instead of the sum of them all (at 10,000 services Prometheus's
    latency and drift queries take a second or two each, and it evaluates them on
    several cores). Sources do no database work (``Source``), and ``_read_source``
    turns any failure into the run's error, so a thread never raises."""
    if not due:
        return {}
    with ThreadPoolExecutor(max_workers=len(due), thread_name_prefix="metrics-source") as pool:
        futures = {
            name: pool.submit(_read_source, name, provided.get(name), targets, now, run)
            for name, run in due
        }
        return {name: future.result() for name, future in futures.items()}


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
    """The rows sent once (``staged_rows``: a COPY), then appended to the samples and
    upserted into the latest values: the same few statements whatever the fleet, and no
    model instance per row; one more on the polls that measure a target for the first
    time (``has_metrics``)."""
    rows = []
    first_measured = set()
    for r in readings:
        live = by_key[(r.service, r.environment)]
        rows.append(
            (
                live.service_id,
                live.environment_id,
                live.release_id,
                r.metric,
                r.time,
                float(r.value),
            )
        )
        if live.unmeasured_target_id is not None and r.metric in FLEET_METRICS:
            first_measured.add(live.unmeasured_target_id)
    with staged_rows(MetricSample, _SAMPLE_FIELDS, rows) as stage:
        stage.append_to(MetricSample)
        stage.upsert_to(
            MetricLatest,
            unique=["service_id", "environment_id", "metric"],
            update=["release_id", "time", "value"],
        )
    if first_measured:
        # In the transaction that stored the values: the fleet ranks on the flag instead
        # of a DISTINCT over every latest value. Latest values go only with their
        # target, so the flag never has to go back to false.
        ServiceEnvironment.objects.filter(pk__in=sorted(first_measured), has_metrics=False).update(
            has_metrics=True
        )
    return len(rows)


_SAMPLE_FIELDS = ("service_id", "environment_id", "release_id", "metric", "time", "value")
