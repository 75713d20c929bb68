"""The fleet overview's rows: every service in every environment, assembled from a fixed
number of queries however large the fleet (each source is read once, then joined here).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from apps.dashboards.slo_text import (
    SLO_KEY_OF,
    breach_summary,
    first_breach_start,
    metric_cell,
    since_text,
)
from apps.metrics import selectors as metric_selectors
from apps.releases.models import Release, ReleaseKind, ReleaseState
from apps.releases.services import rollback_default_target
from apps.releases.services.rollback import ROLLBACK_UNDER_WAY

# Breaching rows that get a "Roll back to vN" button on the fleet page (worst first).
ROLLBACK_OFFERS = 10

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

    @property
    def status(self) -> str:
        if self.drift_commit and self.live is not None:
            return "unapproved"
        if self.breaches or any(state == "breach" for state in self.slo.values()):
            return "breach"
        if self.health_status in ("Degraded", "Missing"):
            return "degraded"
        if self.latest is not None and self.latest.state == ReleaseState.FAILED:
            return "failed"
        if self.latest is not None and self.latest.state in (
            ReleaseState.APPROVED,
            ReleaseState.DEPLOYING,
        ):
            return "moving"
        if self.live is None:
            return "empty"
        if all(self.metrics.get(name) is None for name in SHOWN_METRICS):
            return "unknown"
        return "ok"

    def sort_value(self, key: str):
        values = {
            "status": STATUS_ORDER[self.status],
            "service": self.service.name,
            "environment": self.environment.order,
            "p95": -(self.metrics.get("latency_p95_ms") or 0),
            "error_rate": -(self.metrics.get("error_rate") or 0),
            "cost": -(self.metrics.get("cost_per_day") or 0),
            "drift": -(self.metrics.get("drift_psi") or 0),
            "waiting": -self.waiting,
        }
        return values[key]


SHOWN_METRICS = ("latency_p95_ms", "error_rate", "cost_per_day", "drift_psi")


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


def fleet_rows(
    *,
    query: str = "",
    environment: str = "",
    status: str = "",
    sort: str = "status",
    team: str = "",
    with_rollback: bool = False,
    rollback_team_ids: frozenset[int] | None = None,
) -> list[FleetRow]:
    """The fleet table. With ``with_rollback``, breaching rows of the teams in
    ``rollback_team_ids`` (None: every team) carry their one-click rollback target;
    other teams' rows offer nothing, since their on-call is not the viewer."""
    state = metric_selectors.fleet_state()
    environments = state.environments
    if environment:
        environments = [env for env in environments if env.name == environment]
    services = state.services
    if query:
        needle = query.lower()
        services = [
            s
            for s in services
            if needle in s.name
            or needle in s.owner_team.slug
            or needle in s.owner_team.display_name.lower()
        ]
    if team:
        services = [s for s in services if s.owner_team.slug == team]
    live, latest, waiting, targets = state.live, state.latest, state.waiting, state.targets
    metrics, slo, breaches = state.metrics, state.slo, state.breaches
    rows = []
    for service in services:
        for env in environments:
            key = (service.pk, env.pk)
            target = targets.get(key)
            rows.append(
                FleetRow(
                    service=service,
                    environment=env,
                    live=live.get(key),
                    latest=latest.get(key),
                    sync_status=target.sync_status if target else "",
                    health_status=target.health_status if target else "",
                    health_since=target.health_since if target else None,
                    metrics=_with_every_metric(metrics.get(key, {})),
                    slo=slo.get(key, {}),
                    waiting=waiting.get(key, 0),
                    drift_files=target.drift_files if target and target.drift_revision else {},
                    drift_commit=target.drift_commit if target and target.drift_revision else "",
                    thresholds=_thresholds(target, service),
                    breaches=breaches.get(key, {}),
                )
            )
    if status:
        rows = [row for row in rows if row.status == status]
    sort = sort if sort in SORT_KEYS else "status"
    rows.sort(key=lambda row: (row.sort_value(sort), row.service.name, row.environment.order))
    if with_rollback:
        for row in rows:
            row.can_rollback = (
                rollback_team_ids is None or row.service.owner_team_id in rollback_team_ids
            )
        # A query or two per breaching row (each needs its own history), so only the first
        # ROLLBACK_OFFERS of them, worst first: a fleet-wide breach is no time for a
        # thousand one-click rollbacks, and the page stays a bounded number of queries.
        offered = 0
        for row in rows:
            if offered >= ROLLBACK_OFFERS:
                break
            if (
                row.can_rollback
                and row.status == "breach"
                and row.live is not None
                and not row.rollback_under_way
            ):
                row.rollback_target = rollback_default_target(row.live)
                offered += 1
    return rows
