"""The freeze signal metrics gives releases: while an SLO of any service in an environment
is in breach (a drift alert is the breach of the drift SLO), releases into that
environment wait. Registered from ``MetricsConfig.ready()`` through
``apps.releases.freeze.register_freeze_signal``: releases sits below metrics and never
imports it (docs/freeze-windows.md)."""

from __future__ import annotations

from datetime import UTC, datetime

from apps.metrics.catalog import Metric, format_value
from apps.metrics.models import SloState
from apps.releases.freeze import Freeze


def slo_breach_freezes(environment, at: datetime) -> list[Freeze]:
    """One freeze per SLO in breach in ``environment``; it lasts until the breach clears
    (the SLO judge's recovery, apps/metrics/services/slo.py). One query."""
    states = (
        SloState.objects.filter(environment_id=environment.pk, in_breach=True)
        .select_related("service")
        .order_by("service__name", "metric")
    )
    freezes = []
    for state in states:
        drift = state.metric == Metric.DRIFT_PSI
        alert = "Drift alert" if drift else "SLO breach"
        since = state.breach_started_at or state.streak_since
        when = f" since {since.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if since else ""
        value = format_value(state.metric, state.last_value)
        limit = format_value(state.metric, state.threshold)
        freezes.append(
            Freeze(
                kind="signal",
                reason=f"{alert}: {state.service.name} {Metric(state.metric).label} {value} "
                f"over SLO {limit}{when}",
                scope=environment.name,
                starts_at=since,
                clears="the drift alert clears" if drift else "the SLO breach clears",
            )
        )
    return freezes
