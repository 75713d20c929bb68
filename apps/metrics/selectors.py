"""Reads for the dashboards, the release page and the poll. Every selector runs a fixed
number of queries whatever the size of the fleet (the tests count them)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property

from django.db import connection
from django.db.models import (
    Aggregate,
    Avg,
    BigIntegerField,
    Count,
    ExpressionWrapper,
    F,
    Func,
    JSONField,
    Max,
    Min,
    OuterRef,
    Q,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from apps.metrics import conf
from apps.metrics.catalog import SLO_METRICS, Metric, format_value
from apps.metrics.downsample import lttb_indices
from apps.metrics.models import (
    GuardDecision,
    MetricLatest,
    MetricRollup,
    MetricSample,
    Resolution,
    SloEvent,
    SloEventKind,
    SloState,
    SourceHealth,
)
from apps.metrics.sources import configured_source_names
from apps.metrics.sources.base import MetricsConfigError, Target
from apps.releases.models import (
    Environment,
    Release,
    ReleaseKind,
    ReleaseState,
    Service,
    ServiceEnvironment,
    effective_thresholds,
)

# --- what the poll polls ----------------------------------------------------------------


@dataclass(frozen=True)
class LiveTarget:
    """A live release as the poll sees it: plain values, no model instances (a
    10,000-service fleet would build 50,000 of them every cycle). ``release`` loads the
    model, with its service, environment and model version, for the rare path that acts
    on one (the guard, a notification)."""

    target: Target  # plain values for the sources
    release_id: int
    service_id: int
    environment_id: int
    live_at: datetime | None
    auto_rollback: bool  # the environment's
    bake_minutes: int  # the environment's
    # The ServiceEnvironment row whose has_metrics the poll sets once it stores a fleet
    # metric for it; None when the flag is already set (or there is no row).
    unmeasured_target_id: int | None = None

    @cached_property
    def release(self) -> Release:
        return Release.objects.select_related(
            "service__owner_team", "environment", "model_version"
        ).get(pk=self.release_id)


def _slo_of(service, target: ServiceEnvironment | None) -> dict[str, float | None]:
    if target is not None:
        target.service = service  # the release's copy: no second load of every service
        return target.slo()
    return {name: getattr(service, f"slo_{name}") for name in SLO_METRICS}


_TARGET_COLUMNS = (
    "id",
    "service_id",
    "environment_id",
    "config",
    "live_at",
    "service__name",
    "service__runtime",
    *(f"service__slo_{name}" for name in SLO_METRICS),
    "environment__name",
    "environment__auto_rollback",
    "environment__bake_minutes",
    "model_version__name",
    "model_version__version",
    "model_version__tags",
    "model_version__score_baseline",
)


def poll_targets() -> list[LiveTarget]:
    """Every live release with what the sources and the SLO judge need (two queries,
    rows as tuples)."""
    slo_names = list(SLO_METRICS)
    overrides = {
        (row[0], row[1]): row[2:]
        for row in ServiceEnvironment.objects.values_list(
            "service_id",
            "environment_id",
            "id",
            "has_metrics",
            *(f"slo_{name}" for name in slo_names),
        )
    }
    rows = (
        Release.objects.filter(state=ReleaseState.LIVE)
        .order_by("environment__order", "service__name")
        .values_list(*_TARGET_COLUMNS)
    )
    out = []
    for (
        release_id,
        service_id,
        environment_id,
        config,
        live_at,
        service,
        runtime,
        *row,
    ) in rows:
        service_slo = row[: len(slo_names)]
        environment, auto_rollback, bake_minutes, model, version, tags, baseline = row[
            len(slo_names) :
        ]
        target_id, has_metrics, *target_slo = overrides.get(
            (service_id, environment_id), (None, True, *[None] * len(slo_names))
        )
        slo = effective_thresholds(
            dict(zip(slo_names, target_slo, strict=True)),
            dict(zip(slo_names, service_slo, strict=True)),
        )
        unmeasured = None if has_metrics else target_id
        out.append(
            LiveTarget(
                target=Target(
                    service=service,
                    environment=environment,
                    runtime=runtime,
                    release_id=release_id,
                    model_version=f"{model} v{version}",
                    model_tags={str(k): str(v) for k, v in (tags or {}).items()},
                    score_baseline=baseline,
                    config=config or {},
                    live_at=live_at,
                    slo=slo,
                ),
                release_id=release_id,
                service_id=service_id,
                environment_id=environment_id,
                live_at=live_at,
                auto_rollback=auto_rollback,
                bake_minutes=bake_minutes,
                unmeasured_target_id=unmeasured,
            )
        )
    return out


# --- breaches and live-page versions -------------------------------------------------


@dataclass(frozen=True)
class Breach:
    """An SLO in breach now: since when (the first bad poll of the streak), the value
    and the threshold, for "p95 324 ms — breaching SLO 250 ms since 03:39"."""

    metric: str
    since: datetime | None
    value: float | None
    threshold: float | None


def breaches_by_target(*, targets=None) -> dict[tuple[int, int], dict[str, Breach]]:
    """{(service_id, environment_id): {metric: Breach}} for every SLO in breach (of the
    ``targets``, (service_id, environment_id) pairs, when given). One query."""
    out: dict[tuple[int, int], dict[str, Breach]] = {}
    states = SloState.objects.filter(in_breach=True)
    if targets is not None:
        states = _of_targets(states, targets)
    for state in states:
        out.setdefault((state.service_id, state.environment_id), {})[state.metric] = Breach(
            metric=state.metric,
            since=state.breach_started_at or state.streak_since,
            value=state.last_value,
            threshold=state.threshold,
        )
    return out


# The most breach and recovery events of one target a chart reads from its range: a
# metric flapping at every poll of a day is far fewer. Past it the newest are kept (the
# charts end at now) and the oldest dropped, as if the range began later.
BREACH_EVENTS_CAP = 2000


def breach_windows(
    *, service, environment, start: datetime, end: datetime
) -> list[tuple[str, datetime, datetime | None]]:
    """(metric, started, ended or None while it lasts) of every breach overlapping
    ``start``..``end``, from the breach and recovery events. Two queries, both bounded by
    the range: the events inside it (at most ``BREACH_EVENTS_CAP``, the newest), and one
    row per judged metric for a breach still open where the range begins. Breaches that
    recovered before ``start`` are not read."""
    ids = {"service_id": _id(service), "environment_id": _id(environment)}
    newest_first = list(
        SloEvent.objects.filter(time__gte=start, time__lte=end, **ids)
        .order_by("-time", "-id")
        .values_list("metric", "kind", "started_at", "time")[: BREACH_EVENTS_CAP + 1]
    )
    before = Q(time__lt=start)
    if len(newest_first) > BREACH_EVENTS_CAP:
        # Start where the kept events start: everything up to then counts as "before".
        cut = newest_first[BREACH_EVENTS_CAP - 1][3]
        newest_first = [row for row in newest_first if row[3] > cut]
        before = Q(time__lte=cut)
    opened = _breaches_open_at(ids, before)
    windows = []
    for metric, kind, started_at, _time in reversed(newest_first):
        if kind == SloEventKind.BREACH:
            opened.setdefault(metric, started_at)
        elif metric in opened:
            began = opened.pop(metric)
            if started_at >= start:
                windows.append((metric, began, started_at))
    windows.extend((metric, began, None) for metric, began in opened.items())
    return sorted(windows, key=lambda w: w[1])


def _breaches_open_at(ids: dict, before: Q) -> dict[str, datetime]:
    """{metric: when its breach began} for the breaches of one target (``ids``: its
    service_id and environment_id) still open at the end of ``before``: the first breach
    since that metric's last recovery (a new release restarts judging without a recovery,
    so breaches can follow each other). One query, one row per judged metric (SloState),
    each answered from the index on time near the boundary rather than by reading the
    metric's whole history."""
    earlier = SloEvent.objects.filter(before, metric=OuterRef("metric"), **ids)
    last_recovery = (
        earlier.filter(kind=SloEventKind.RECOVERY).order_by("-time", "-id").values("time")[:1]
    )
    first_open_breach = (
        earlier.filter(
            kind=SloEventKind.BREACH,
            time__gt=Coalesce(Subquery(last_recovery), Value(_EPOCH)),
        )
        .order_by("time", "id")
        .values("started_at")[:1]
    )
    return dict(
        SloState.objects.filter(**ids)
        .annotate(began=Subquery(first_open_breach))
        .filter(began__isnull=False)
        .values_list("metric", "began")
    )


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


# --- ids and times -----------------------------------------------------------------------
# Times of bulk reads travel as integer microseconds: Django parses every timestamptz it
# fetches in Python (~14 us a row), and the pages need few of them as datetimes.


def _id(value) -> int:
    return value if isinstance(value, int) else value.pk


def _as_datetime(value) -> datetime:
    return value if isinstance(value, datetime) else _EPOCH + timedelta(microseconds=value)


class EpochMicroseconds(Func):
    """A PostgreSQL timestamptz as integer microseconds since the epoch."""

    output_field = BigIntegerField()
    template = "(EXTRACT(EPOCH FROM %(expressions)s) * 1000000)::bigint"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(value) -> int:
    """Integer microseconds since the epoch (PostgreSQL sends them; other databases send a
    datetime)."""
    if isinstance(value, datetime):
        delta = value - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return int(value)


def _time_column(field: str) -> tuple:
    return (EpochMicroseconds(field),) if connection.vendor == "postgresql" else (field,)


def _of_targets(rows, targets):
    """``rows`` of these (service_id, environment_id) pairs: a page of the fleet, or one
    dashboard. Narrowed to the pairs' services and environments (the indexes start with
    them), then to the exact pairs, each as one number: a page of the 50 worst targets is
    often one environment each of 50 services, whose services x environments were 250
    targets read in full (releases with their versions, metrics, SLO states) for 50 rows.
    An OR of exact pairs cost more than it saved (Django compiled each pair, ~0.1 s for a
    page of 50 over six queries; PostgreSQL tests every row against every branch, minutes
    with a fleet's 5,000)."""
    targets = set(targets)
    services = sorted({service_id for service_id, _ in targets})
    environments = sorted({environment_id for _, environment_id in targets})
    rows = rows.filter(service_id__in=services, environment_id__in=environments)
    if len(targets) == len(services) * len(environments):
        return rows  # every pair of them (one service, one environment, the whole fleet)
    return rows.alias(
        target_pair=ExpressionWrapper(
            F("service_id") * _PAIR + F("environment_id"), output_field=BigIntegerField()
        )
    ).filter(target_pair__in=sorted({s * _PAIR + e for s, e in targets}))


# (service_id, environment_id) as service_id * _PAIR + environment_id: one comparable
# number per target for an IN list (ids stay far below 2^31).
_PAIR = 1 << 32


# --- fleet overview ---------------------------------------------------------------------


def latest_by_target(
    *,
    max_age: timedelta | None = None,
    now: datetime | None = None,
    service=None,
    environment=None,
    targets=None,
) -> dict[tuple[int, int], dict]:
    """{(service_id, environment_id): {metric: value, ..., "observed_at": datetime}}.

    One query. ``observed_at`` is the newest reading's time for the target. With
    ``max_age``, values older than that are left out (a source that has been down shows
    as missing values, not as old ones passed off as current). ``service`` and
    ``environment`` (instances or ids) narrow it to one target: a dashboard needs one
    row, not the fleet's; ``targets`` ((service_id, environment_id) pairs) to a page of
    the fleet.
    """
    rows = MetricLatest.objects.all()
    if targets is not None:
        rows = _of_targets(rows, targets)
    if service is not None:
        rows = rows.filter(service_id=_id(service))
    if environment is not None:
        rows = rows.filter(environment_id=_id(environment))
    if max_age is not None:
        rows = rows.filter(time__gte=(now or timezone.now()) - max_age)
    if connection.vendor == "postgresql":
        return _latest_grouped(rows)
    out: dict[tuple[int, int], dict] = {}
    for service_id, environment_id, metric, value, time in rows.values_list(
        "service_id", "environment_id", "metric", "value", "time"
    ):
        entry = out.setdefault((service_id, environment_id), {"observed_at": time})
        entry[metric] = value
        if time > entry["observed_at"]:
            entry["observed_at"] = time
    return out


def _latest_grouped(rows) -> dict[tuple[int, int], dict]:
    """``latest_by_target`` on PostgreSQL: one row per target, its values as one JSON
    object and its newest time as integer microseconds. A fleet of 5,000 targets has
    35,000 MetricLatest rows; fetching them one by one (and parsing each timestamp) cost
    most of the fleet page's reads."""
    grouped = (
        rows.order_by()
        .values("service_id", "environment_id")
        .annotate(
            values=JsonObjectAgg("metric", "value"),
            newest=EpochMicroseconds(Max("time")),
        )
        .values_list("service_id", "environment_id", "values", "newest")
    )
    return {
        (service_id, environment_id): {**values, "observed_at": _as_datetime(newest)}
        for service_id, environment_id, values, newest in grouped
    }


class JsonObjectAgg(Aggregate):
    """PostgreSQL ``json_object_agg(key, value)``: one JSON object per group, decoded by
    the driver in C rather than row by row in Python."""

    function = "json_object_agg"
    # As jsonb: Django's PostgreSQL backend reads jsonb as text for JSONField to decode.
    template = "%(function)s(%(expressions)s)::jsonb"
    output_field = JSONField()


def slo_status_by_target(
    *, now: datetime | None = None, targets=None
) -> dict[tuple[int, int], dict[str, str]]:
    """{(service_id, environment_id): {metric: "ok" | "breach" | "unknown"}} for every
    metric with an SLO (p95 latency, error rate, cost per day, drift). Two queries.

    "breach": K bad polls in a row and not recovered since. "unknown": an SLO is set but
    there is no recent judgement (nothing live, a new release still settling, or the
    source stale). Metrics without an SLO are left out. ``targets`` ((service_id,
    environment_id) pairs) narrows it to those (a page of the fleet, a dashboard).
    """
    now = now or timezone.now()
    state_rows = SloState.objects.all()
    target_rows = ServiceEnvironment.objects.all()
    if targets is not None:
        state_rows = _of_targets(state_rows, targets)
        target_rows = _of_targets(target_rows, targets)
    stale_after = timedelta(seconds=conf.get("METRICS_STALE_AFTER_SECONDS"))
    fresh_since = _micros(now - stale_after)
    # Plain tuples, times as integer microseconds: one SloState per target and metric
    # makes this the fleet page's largest read.
    states = {
        (service_id, environment_id, metric): (in_breach, evaluated)
        for service_id, environment_id, metric, in_breach, evaluated in (
            state_rows.values_list(
                "service_id",
                "environment_id",
                "metric",
                "in_breach",
                *_time_column("last_evaluated_at"),
            )
        )
    }
    slo_fields = [f"slo_{key}" for key in SLO_METRICS]
    targets = target_rows.values_list(
        "service_id",
        "environment_id",
        *slo_fields,
        *(f"service__{name}" for name in slo_fields),
    )
    width = len(slo_fields)
    out: dict[tuple[int, int], dict[str, str]] = {}
    for service_id, environment_id, *thresholds in targets:
        statuses = {}
        for index, metric in enumerate(SLO_METRICS.values()):
            # The environment's override, else the service's (ServiceEnvironment.slo()).
            if thresholds[index] is None and thresholds[width + index] is None:
                continue
            state = states.get((service_id, environment_id, metric))
            if state is None or state[1] is None:
                statuses[metric] = "unknown"
            elif state[0]:
                statuses[metric] = "breach"
            elif _micros(state[1]) < fresh_since:
                statuses[metric] = "unknown"
            else:
                statuses[metric] = "ok"
        if statuses:
            out[(service_id, environment_id)] = statuses
    return out


def target_slo(
    *, service, environment, thresholds: dict[str, float | None], now: datetime | None = None
) -> tuple[dict[str, Breach], dict[str, str]]:
    """One target's ``breaches_by_target`` and ``slo_status_by_target`` entries from one
    query (a dashboard made three for them). ``thresholds``: its effective SLOs by
    ``ServiceEnvironment.slo()`` key; empty when it has no target row (no statuses then,
    as ``slo_status_by_target`` reads them from that row)."""
    now = now or timezone.now()
    fresh_since = now - timedelta(seconds=conf.get("METRICS_STALE_AFTER_SECONDS"))
    states = {
        state.metric: state
        for state in SloState.objects.filter(
            service_id=_id(service), environment_id=_id(environment)
        ).only(
            "metric",
            "in_breach",
            "last_evaluated_at",
            "breach_started_at",
            "streak_since",
            "last_value",
            "threshold",
        )
    }
    breaches = {
        metric: Breach(
            metric=metric,
            since=state.breach_started_at or state.streak_since,
            value=state.last_value,
            threshold=state.threshold,
        )
        for metric, state in states.items()
        if state.in_breach
    }
    statuses = {}
    for key, metric in SLO_METRICS.items():
        if thresholds.get(key) is None:
            continue
        state = states.get(metric)
        if state is None or state.last_evaluated_at is None:
            statuses[metric] = "unknown"
        elif state.in_breach:
            statuses[metric] = "breach"
        elif state.last_evaluated_at < fresh_since:
            statuses[metric] = "unknown"
        else:
            statuses[metric] = "ok"
    return breaches, statuses


@dataclass(frozen=True)
class FleetState:
    """What the fleet overview shows, read once for every target."""

    services: list  # Service rows: id, name, owner team
    environments: list  # Environment rows, in promotion order
    live: dict[tuple[int, int], Release]
    latest: dict[tuple[int, int], Release]  # the newest release still moving, failed or live
    waiting: dict[tuple[int, int], int]  # releases pending approval
    targets: dict[tuple[int, int], ServiceEnvironment]  # Argo CD status and drift
    metrics: dict[tuple[int, int], dict]  # latest_by_target()
    slo: dict[tuple[int, int], dict[str, str]]  # slo_status_by_target()
    breaches: dict = field(default_factory=dict)  # breaches_by_target()


def fleet_state(
    *, now: datetime | None = None, targets=None, environments: list | None = None
) -> FleetState:
    """Everything the fleet overview shows for every service in every environment (or for
    ``targets``, (service_id, environment_id) pairs: one page of it), in a fixed number
    of queries (nine, eight when the caller has the ``environments`` at hand)
    whatever the size of the fleet. Each read fetches only the columns the page shows:
    with 5,000 targets, whole release rows (rendered manifests, configuration) and whole
    target rows cost more than the page's own work."""
    if environments is None:
        environments = list(
            Environment.objects.only("id", "name", "order").order_by("order", "name")
        )
    slo_fields = [f"slo_{key}" for key in SLO_METRICS]
    service_rows = Service.objects.select_related("owner_team").only(
        "id", "name", "owner_team__slug", "owner_team__name", "runbook_url", *slo_fields
    )
    release_rows = Release.objects.all()
    target_rows = ServiceEnvironment.objects.all()
    if targets is not None:
        targets = list(targets)
        service_rows = service_rows.filter(pk__in={service_id for service_id, _ in targets})
        release_rows = _of_targets(release_rows, targets)
        target_rows = _of_targets(target_rows, targets)
    services = list(service_rows.order_by("name"))
    live: dict[tuple[int, int], Release] = {}
    latest: dict[tuple[int, int], Release] = {}
    releases = (
        release_rows.select_related("model_version", "requested_by")
        .filter(
            state__in=[
                ReleaseState.LIVE,
                ReleaseState.PENDING_APPROVAL,
                ReleaseState.APPROVED,
                ReleaseState.DEPLOYING,
                ReleaseState.FAILED,
            ]
        )
        # Pending releases only matter here when they are rollbacks (one under way).
        .exclude(
            state=ReleaseState.PENDING_APPROVAL,
            kind__in=[ReleaseKind.DEPLOY, ReleaseKind.PROMOTION],
        )
        .only(
            "id",
            "uid",
            "service_id",
            "environment_id",
            "state",
            "kind",
            "created_at",
            "live_at",
            # What rollback_candidates compares with, for the page's rollback offers.
            "digest",
            "rollback_target_id",
            "requested_by_id",
            "requested_by_system",
            "requested_by__id",
            "requested_by__username",
            "model_version__id",
            "model_version__name",
            "model_version__version",
        )
        .order_by("created_at", "pk")
    )
    for release in releases:
        key = (release.service_id, release.environment_id)
        if release.state == ReleaseState.LIVE:
            live[key] = release
        latest[key] = release  # ordered oldest first, so the newest wins: a failure that
        # was followed by a newer live release (a restore, a fix) no longer colours the row
    waiting = Counter(
        release_rows.filter(state=ReleaseState.PENDING_APPROVAL).values_list(
            "service_id", "environment_id"
        )
    )
    targets = {
        (t.service_id, t.environment_id): t
        for t in target_rows.only(
            "id",
            "service_id",
            "environment_id",
            "sync_status",
            "health_status",
            "health_since",
            "drift_revision",
            "drift_commit",
            "drift_files",
            *slo_fields,
        )
    }
    return FleetState(
        services=services,
        environments=environments,
        live=live,
        latest=latest,
        waiting=dict(waiting),
        targets=targets,
        metrics=latest_by_target(targets=targets),
        slo=slo_status_by_target(now=now, targets=targets),
        breaches=breaches_by_target(targets=targets),
    )


@dataclass(frozen=True)
class FleetIndex:
    """Just enough about every target to rank and filter the whole fleet, as plain
    tuples: which page a row lands on is decided over all 5,000 targets, but only the
    page's rows are read in full (``fleet_state(targets=...)``)."""

    services: list[tuple[int, str, str]]  # (id, name, owner team), by name
    environments: list  # Environment rows (id, name, order), in promotion order
    live: set[tuple[int, int]]  # targets with a live release
    latest: dict[tuple[int, int], tuple[str, str]]  # newest release still moving: (state, kind)
    waiting: dict[tuple[int, int], int]  # releases pending approval (when asked for)
    health: dict[tuple[int, int], str]  # Argo CD health status
    drifted: set[tuple[int, int]]  # the repository holds files nobody approved
    breaching: set[tuple[int, int]]  # an SLO in breach
    measured: set[tuple[int, int]]  # some FLEET_METRICS metric has a latest value
    values: dict[tuple[int, int], float]  # the sort metric's latest value, when sorting by one


def fleet_index(*, sort_metric: str | None = None, with_waiting: bool = False) -> FleetIndex:
    """What ranking and filtering the whole fleet needs, and no more: five narrow queries
    of plain tuples whatever the fleet's size, one more when sorting by a metric
    (``sort_metric``) or by approvals waiting (``with_waiting``). A target without a
    latest value of any of ``FLEET_METRICS`` is not ``measured`` (its status "unknown"):
    the poll keeps that on the target (``has_metrics``)."""
    environments = list(Environment.objects.only("id", "name", "order").order_by("order", "name"))
    services = list(
        Service.objects.order_by("name").values_list(
            "id", "name", "owner_team_id", "owner_team__slug", "owner_team__name"
        )
    )
    live: set[tuple[int, int]] = set()
    latest: dict[tuple[int, int], tuple[str, str]] = {}
    # The same releases as fleet_state reads, oldest first so the newest wins.
    for service_id, environment_id, state, kind in (
        Release.objects.filter(
            state__in=[
                ReleaseState.LIVE,
                ReleaseState.PENDING_APPROVAL,
                ReleaseState.APPROVED,
                ReleaseState.DEPLOYING,
                ReleaseState.FAILED,
            ]
        )
        .exclude(
            state=ReleaseState.PENDING_APPROVAL,
            kind__in=[ReleaseKind.DEPLOY, ReleaseKind.PROMOTION],
        )
        .order_by("created_at", "pk")
        .values_list("service_id", "environment_id", "state", "kind")
    ):
        key = (service_id, environment_id)
        if state == ReleaseState.LIVE:
            live.add(key)
        latest[key] = (state, kind)
    waiting: Counter = Counter()
    if with_waiting:
        waiting.update(
            Release.objects.filter(state=ReleaseState.PENDING_APPROVAL).values_list(
                "service_id", "environment_id"
            )
        )
    health: dict[tuple[int, int], str] = {}
    drifted: set[tuple[int, int]] = set()
    measured: set[tuple[int, int]] = set()
    for (
        service_id,
        environment_id,
        health_status,
        revision,
        commit,
        has_metrics,
    ) in ServiceEnvironment.objects.values_list(
        "service_id",
        "environment_id",
        "health_status",
        "drift_revision",
        "drift_commit",
        "has_metrics",
    ):
        key = (service_id, environment_id)
        health[key] = health_status
        if revision and commit:
            drifted.add(key)
        if has_metrics:  # kept by the poll, for FLEET_METRICS
            measured.add(key)
    breaching = set(
        SloState.objects.filter(in_breach=True)
        .values_list("service_id", "environment_id")
        .distinct()
    )
    values: dict[tuple[int, int], float] = {}
    if sort_metric is not None:
        values = {
            (service_id, environment_id): value
            for service_id, environment_id, value in MetricLatest.objects.filter(
                metric=sort_metric
            ).values_list("service_id", "environment_id", "value")
        }
    return FleetIndex(
        services=services,
        environments=environments,
        live=live,
        latest=latest,
        waiting=dict(waiting),
        health=health,
        drifted=drifted,
        breaching=breaching,
        measured=measured,
        values=values,
    )


# --- charts -----------------------------------------------------------------------------


def chart_resolution(start: datetime, end: datetime) -> int | None:
    """None (raw samples) for short ranges, else the roll-up resolution in seconds."""
    span = end - start
    if span <= timedelta(hours=conf.get("METRICS_CHART_RAW_MAX_HOURS")):
        return None
    if span <= timedelta(hours=conf.get("METRICS_CHART_5M_MAX_HOURS")):
        return Resolution.FIVE_MINUTES
    return Resolution.ONE_HOUR


@dataclass(frozen=True)
class Series:
    """One chart line as parallel arrays: ``times`` in integer microseconds since the
    epoch, ``values`` as floats. The charts format only the points LTTB keeps, so no
    per-point datetimes or dicts are built for the rows that are dropped."""

    times: list[int]
    values: list[float]

    def __len__(self) -> int:
        return len(self.times)

    def datetimes(self) -> list[datetime]:
        return [_EPOCH + timedelta(microseconds=t) for t in self.times]

    def points(self) -> list[tuple[datetime, float]]:
        return list(zip(self.datetimes(), self.values, strict=True))


def chart_page_series(
    *,
    service,
    environment,
    metrics: list[str] | tuple[str, ...],
    start: datetime,
    end: datetime,
    max_points: int = 1000,
) -> dict[str, Series]:
    """Every series of a chart page for one target between ``start`` and ``end``, by
    metric, oldest first, each at most ``max_points`` points: raw samples for ranges up to
    METRICS_CHART_RAW_MAX_HOURS, 5-minute roll-up averages up to
    METRICS_CHART_5M_MAX_HOURS, hourly averages beyond, then LTTB so peaks survive the
    cut. One query for all the metrics (a page of seven series used to cost seven round
    trips). ``service`` and ``environment`` may be instances or ids; a metric without
    data maps to an empty series."""
    resolution = chart_resolution(start, end)
    if resolution is None:
        rows = (
            MetricSample.objects.filter(
                service_id=_id(service),
                environment_id=_id(environment),
                metric__in=list(metrics),
                time__gte=start,
                time__lte=end,
            )
            .order_by("metric", "time")
            .values_list("metric", *_time_column("time"), "value")
        )
    else:
        rows = (
            MetricRollup.objects.filter(
                service_id=_id(service),
                environment_id=_id(environment),
                metric__in=list(metrics),
                resolution=resolution,
                bucket_start__gte=start - timedelta(seconds=resolution),
                bucket_start__lte=end,
                count__gt=0,
            )
            .order_by("metric", "bucket_start")
            # The average in SQL (float8 / integer, the same IEEE division as Python's).
            .values_list("metric", *_time_column("bucket_start"), F("sum") / F("count"))
        )
    out = {metric: Series([], []) for metric in metrics}
    for metric, time, value in _plain_rows(rows):
        series = out[metric]
        series.times.append(time)
        series.values.append(value)
    for metric, series in out.items():
        if series.times and not isinstance(series.times[0], int):
            series.times[:] = [_micros(t) for t in series.times]
        keep = lttb_indices(series.times, series.values, max_points)
        if keep is not None:
            out[metric] = Series([series.times[i] for i in keep], [series.values[i] for i in keep])
    return out


def chart_series(
    *,
    service,
    environment,
    metric: str,
    start: datetime,
    end: datetime,
    max_points: int = 1000,
) -> list[tuple[datetime, float]]:
    """One metric of one target as (time, value) points: ``chart_page_series`` for a
    single metric. One query."""
    return chart_page_series(
        service=service,
        environment=environment,
        metrics=(metric,),
        start=start,
        end=end,
        max_points=max_points,
    )[metric].points()


def _plain_rows(rows):
    """A values_list queryset's rows as the driver returns them. On PostgreSQL its types
    are already the ones wanted (text, bigint microseconds, float8), and skipping
    Django's per-row converters took a few milliseconds off a dashboard's 2,000 chart
    rows; other databases send times as text, which the converters parse."""
    if connection.vendor != "postgresql":
        return rows
    sql, params = rows.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


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
