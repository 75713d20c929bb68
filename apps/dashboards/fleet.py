"""The fleet overview's rows: every service in every environment, worst first, one page
at a time, from a fixed number of queries however large the fleet.

Two reads: ``fleet_index`` ranks and filters every target from plain tuples (status,
sort value), then ``fleet_state`` reads in full only the targets on the asked-for page.
With 1,000 services in 5 environments, rendering all 5,000 rows through the templates
took seconds; a page of ``PAGE_SIZE`` rows keeps the page (and each live poll's 200)
small, and the status order puts what on-call must see first on page 1.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property

from apps.dashboards.per_version import PerVersion
from apps.dashboards.slo_text import (
    SLO_KEY_OF,
    breach_summary,
    first_breach_start,
    metric_cell,
    since_text,
)
from apps.metrics import selectors as metric_selectors
from apps.metrics.catalog import FLEET_METRICS
from apps.releases.models import Release, ReleaseKind, ReleaseState
from apps.releases.services import rollback_default_targets
from apps.releases.services.rollback import ROLLBACK_UNDER_WAY

# Breaching rows that get a "Roll back to vN" button on the fleet page (worst first).
ROLLBACK_OFFERS = 10
# Rows (service x environment) per page: a screenful or two, enough for a bad day's
# breaches on page 1, small enough to render in a few tens of milliseconds.
PAGE_SIZE = 50

# Worst first: what on-call staff should look at before anything else.
STATUS_ORDER = {
    # The repository holds files nobody approved: what runs may not be what was reviewed.
    "unapproved": 0,
    "breach": 1,
    "degraded": 2,
    "failed": 3,
    "moving": 4,
    "unknown": 5,
    "ok": 6,
    "empty": 7,
}
SORT_KEYS = ("status", "service", "environment", "p95", "error_rate", "cost", "drift", "waiting")
# Sort keys that rank by a metric's latest value (highest first).
SORT_METRICS = {
    "p95": "latency_p95_ms",
    "error_rate": "error_rate",
    "cost": "cost_per_day",
    "drift": "drift_psi",
}


def target_status(
    *,
    drifted: bool,
    live: bool,
    breaching: bool,
    health: str,
    latest_state: str | None,
    measured: bool,
) -> str:
    """One target's status, the first that applies in ``STATUS_ORDER``. The one rule for
    both the ranking over the whole fleet and the rows shown."""
    if drifted and live:
        return "unapproved"
    if breaching:
        return "breach"
    if health in ("Degraded", "Missing"):
        return "degraded"
    if latest_state == ReleaseState.FAILED:
        return "failed"
    if latest_state in (ReleaseState.APPROVED, ReleaseState.DEPLOYING):
        return "moving"
    if not live:
        return "empty"
    if not measured:
        return "unknown"
    return "ok"


@dataclass
class FleetRow:
    service: object
    environment: object
    live: Release | None = None
    latest: Release | None = None  # the newest release of the target, whatever its state
    sync_status: str = ""
    health_status: str = ""
    health_since: datetime | None = None
    metrics: dict = field(default_factory=dict)
    slo: dict = field(default_factory=dict)
    waiting: int = 0
    drift_files: dict = field(default_factory=dict)  # an unapproved change: file names
    drift_commit: str = ""
    thresholds: dict = field(default_factory=dict)  # metric -> SLO threshold
    breaches: dict = field(default_factory=dict)  # metric -> metrics.selectors.Breach
    rollback_target: Release | None = None  # set for breaching rows on-call can roll back
    can_rollback: bool = False  # the viewer is on call (or admin) for the service's team

    @property
    def cells(self) -> list:
        """The shown numbers, each with its SLO verdict in words."""
        return [
            metric_cell(
                name,
                self.metrics.get(name)
                if self.metrics.get(name) is not None or name not in self.breaches
                else self.breaches[name].value,
                state="breach" if name in self.breaches else self.slo.get(name),
                threshold=self.thresholds.get(name)
                or (self.breaches[name].threshold if name in self.breaches else None),
                since=self.breaches[name].since if name in self.breaches else None,
            )
            for name in SHOWN_METRICS
        ]

    @property
    def breach_since(self) -> str:
        return since_text(first_breach_start(self.breaches))

    @property
    def breach_reason(self) -> str:
        """The rollback reason prefilled from the breach (on-call may edit it)."""
        live = f"v{self.live.model_version.version}" if self.live else "the live release"
        return f"{breach_summary(self.breaches)} after {live} went live"

    @property
    def rollback_under_way(self) -> bool:
        latest = self.latest
        return bool(
            latest is not None
            and latest.kind == ReleaseKind.ROLLBACK
            and latest.state in ROLLBACK_UNDER_WAY
        )

    @cached_property
    def status(self) -> str:
        """Read a dozen times a row by the template; what it derives from is set when the
        row is built."""
        return target_status(
            drifted=bool(self.drift_commit),
            live=self.live is not None,
            breaching=bool(self.breaches) or any(state == "breach" for state in self.slo.values()),
            health=self.health_status,
            latest_state=self.latest.state if self.latest is not None else None,
            measured=any(self.metrics.get(name) is not None for name in SHOWN_METRICS),
        )


# The numbers in a row; a row with none of them is "unknown" (the index ranks on the
# target's has_metrics flag, kept by the poll for these same metrics).
SHOWN_METRICS = FLEET_METRICS


def _with_every_metric(values: dict) -> dict:
    """Templates read missing keys as "", not None; name every shown metric explicitly."""
    return {**values, **{name: values.get(name) for name in SHOWN_METRICS}}


def _thresholds(target, service) -> dict:
    """This environment's SLO override, else the service's (``ServiceEnvironment.slo``
    without following ``target.service``: the fleet has the service row at hand)."""

    def pick(key: str):
        override = getattr(target, f"slo_{key}", None) if target is not None else None
        return override if override is not None else getattr(service, f"slo_{key}", None)

    return {metric: pick(key) for metric, key in SLO_KEY_OF.items()}


@dataclass
class FleetPage:
    """One page of the fleet, worst first, and what the filters matched in all."""

    rows: list[FleetRow]
    number: int  # this page, from 1
    pages: int
    per_page: int
    total: int  # rows matching every filter, on all pages
    counts: dict[str, int]  # rows per status matching the other filters (status aside)
    rolling_back: int  # of those, targets whose rollback is under way
    # every owning team as (slug, display name), for the filter
    teams: list[tuple[str, str]] = field(default_factory=list)
    environments: list = field(default_factory=list)  # every environment, for the filter

    @property
    def first(self) -> int:
        """1-based position of the page's first row (0 when nothing matches)."""
        return (self.number - 1) * self.per_page + 1 if self.rows else 0

    @property
    def last(self) -> int:
        return self.first + len(self.rows) - 1 if self.rows else 0


def _matches(needle: str, *texts: str) -> bool:
    return any(needle in text.lower() for text in texts)


@dataclass(frozen=True)
class _Ranking:
    """The fleet ranked for one set of filters and a sort: every matching target's key,
    in page order. Depends only on the data behind the fleet's version key."""

    keys: list[tuple[int, int]]
    counts: dict[str, int]
    rolling_back: int
    teams: list[tuple[str, str]]
    environments: list


# Per process, while the fleet's version key holds: the index and the rankings of the
# filters people use (page 1 of the whole fleet above all). Sized for a few keys' worth.
_INDEXES = PerVersion(size=8)
_RANKINGS = PerVersion(size=64)


def forget_rankings() -> None:
    """Drop the rankings kept in this process: the next page ranks from the database
    (tests and benchmarks that measure that path)."""
    _INDEXES.clear()
    _RANKINGS.clear()


def fleet_page(
    *,
    query: str = "",
    team: str = "",
    environment: str = "",
    status: str = "",
    sort: str = "status",
    page: int = 1,
    per_page: int | None = None,
    with_rollback: bool = False,
    rollback_team_ids: frozenset[int] | None = None,
    version: tuple | None = None,
) -> FleetPage:
    """Page ``page`` of the fleet's rows matching the filters (``query``: in the service
    name or team; ``team``: in the team; ``environment``: its name; ``status``), sorted
    by ``sort``, worst first by default, ``per_page`` rows a page (``PAGE_SIZE``). A page
    past the end shows the last one.

    ``version``: the fleet's version key (``versions.fleet_version``) the caller read
    before; the ranking is then reused by every request with the same key in this
    process, and only the page's own rows are read."""
    sort = sort if sort in SORT_KEYS else "status"
    filters = (query.lower(), team, environment, status, sort)
    if version is None:
        ranking = _rank(*filters, index=_index(sort))
    else:
        ranking = _RANKINGS.get(
            (version, *filters),
            lambda: _rank(
                *filters,
                # Sorts by a metric or by approvals read one column more; the others share.
                index=_INDEXES.get(
                    (version, SORT_METRICS.get(sort), sort == "waiting"), lambda: _index(sort)
                ),
            ),
        )
    per_page = max(1, per_page or PAGE_SIZE)
    pages = max(1, math.ceil(len(ranking.keys) / per_page))
    number = min(max(1, page), pages)
    rows = _rows(ranking.keys[(number - 1) * per_page : number * per_page], ranking.environments)
    if with_rollback:
        # Breaching rows of the teams the viewer is on call for (None: every team) carry
        # their one-click rollback; other teams' rows offer nothing.
        for row in rows:
            row.can_rollback = (
                rollback_team_ids is None or row.service.owner_team_id in rollback_team_ids
            )
        _offer_rollbacks(rows)
    return FleetPage(
        rows=rows,
        number=number,
        pages=pages,
        per_page=per_page,
        total=len(ranking.keys),
        counts=ranking.counts,
        rolling_back=ranking.rolling_back,
        teams=ranking.teams,
        environments=ranking.environments,
    )


def _index(sort: str) -> metric_selectors.FleetIndex:
    return metric_selectors.fleet_index(
        sort_metric=SORT_METRICS.get(sort),
        with_waiting=sort == "waiting",
    )


def _rank(
    needle: str,
    team: str,
    environment: str,
    status: str,
    sort: str,
    *,
    index: metric_selectors.FleetIndex,
) -> _Ranking:
    """Every target matching the filters, ranked, from the index's plain tuples."""
    environments = index.environments
    if environment:
        environments = [env for env in environments if env.name == environment]
    ranked = []
    counts: Counter = Counter()
    rolling_back = 0
    for service_id, name, _team_id, team_slug, team_name in index.services:
        if needle and not _matches(needle, name, team_slug, team_name):
            continue
        if team and team_slug != team:
            continue
        for env in environments:
            key = (service_id, env.pk)
            latest = index.latest.get(key)
            row_status = target_status(
                drifted=key in index.drifted,
                live=key in index.live,
                breaching=key in index.breaching,
                health=index.health.get(key, ""),
                latest_state=latest[0] if latest else None,
                measured=key in index.measured,
            )
            counts[row_status] += 1
            if latest and latest[1] == ReleaseKind.ROLLBACK and latest[0] in ROLLBACK_UNDER_WAY:
                rolling_back += 1
            if status and row_status != status:
                continue
            if sort == "status":
                value = STATUS_ORDER[row_status]
            elif sort == "service":
                value = name
            elif sort == "environment":
                value = env.order
            elif sort == "waiting":
                value = -index.waiting.get(key, 0)
            else:
                value = -(index.values.get(key) or 0)
            ranked.append((value, name, env.order, key))
    ranked.sort()
    return _Ranking(
        keys=[entry[3] for entry in ranked],
        counts=dict(counts),
        rolling_back=rolling_back,
        teams=sorted({(slug, tname or slug) for _, _, _, slug, tname in index.services}),
        environments=index.environments,
    )


def _rows(keys: list[tuple[int, int]], environments) -> list[FleetRow]:
    """Full rows for ``keys``, in that order, from one ``fleet_state`` of those targets
    (not of their services in every environment: the worst rows of a page are often
    one environment each of 50 services)."""
    if not keys:
        return []
    state = metric_selectors.fleet_state(targets=keys, environments=environments)
    services = {service.pk: service for service in state.services}
    envs = {env.pk: env for env in environments}
    rows = []
    for key in keys:
        service = services.get(key[0])
        if service is None:  # deleted between the two reads
            continue
        target = state.targets.get(key)
        rows.append(
            FleetRow(
                service=service,
                environment=envs[key[1]],
                live=state.live.get(key),
                latest=state.latest.get(key),
                sync_status=target.sync_status if target else "",
                health_status=target.health_status if target else "",
                health_since=target.health_since if target else None,
                metrics=_with_every_metric(state.metrics.get(key, {})),
                slo=state.slo.get(key, {}),
                waiting=state.waiting.get(key, 0),
                drift_files=target.drift_files if target and target.drift_revision else {},
                drift_commit=target.drift_commit if target and target.drift_revision else "",
                thresholds=_thresholds(target, service),
                breaches=state.breaches.get(key, {}),
            )
        )
    return rows


def _offer_rollbacks(rows: list[FleetRow]) -> None:
    """The one-click rollback of the first ROLLBACK_OFFERS breaching rows of the page,
    worst first (a fleet-wide breach is no time for a thousand one-click rollbacks), each
    naming the version it goes back to: ``rollback_default_target``'s choice for all of
    them in one query (two when a live release is itself a rollback), the rendered
    manifests left in the database."""
    offered = [
        row
        for row in rows
        if row.can_rollback
        and row.status == "breach"
        and row.live is not None
        and not row.rollback_under_way
    ][:ROLLBACK_OFFERS]
    if not offered:
        return
    targets = rollback_default_targets(
        [row.live for row in offered],
        fields=(
            "id",
            "service_id",
            "environment_id",
            "live_at",
            "ended_at",
            "model_version__id",
            "model_version__version",
        ),
    )
    for row in offered:
        row.rollback_target = targets.get(row.live.pk)
