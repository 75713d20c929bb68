"""Breach started / recovered notifications, written by the SLO judge in the poll's
transaction (so a judgement and its notification commit together), to on-call and the
owning team's channels, linking to the service's dashboard."""

from __future__ import annotations

from collections.abc import Sequence

from django.urls import reverse

from apps.metrics.catalog import Metric, format_value
from apps.metrics.models import SloEvent, SloEventKind
from apps.notifications.events import EventKind
from apps.notifications.services import Draft, notification_emit_many
from apps.releases.notify import oncall_recipients


def slo_notify(events: Sequence[SloEvent]) -> None:
    """One notification per breach or recovery event of this poll, written together (a
    constant number of queries however many services breach at once)."""
    if not events:
        return
    oncall: dict[int, tuple] = {}  # per team: one query per team, not per event
    drafts = []
    for event in events:
        release = event.release
        service, environment = release.service.name, release.environment.name
        metric = Metric(event.metric).label if event.metric in Metric.values else event.metric
        value = format_value(event.metric, event.value)
        threshold = format_value(event.metric, event.threshold)
        if event.kind == SloEventKind.BREACH:
            kind = EventKind.BREACH_STARTED
            title = f"{service} in {environment}: {metric} breaches its SLO"
            text = (
                f"{metric} {value} over SLO {threshold} for {event.polls} polls "
                f"(since {event.started_at:%H:%M} UTC). Live: v{release.model_version.version}."
            )
        else:
            kind = EventKind.BREACH_RECOVERED
            title = f"{service} in {environment}: {metric} is back within its SLO"
            text = f"{metric} {value}, SLO {threshold}, for {event.polls} polls."
        drafts.append(
            Draft(
                kind=kind,
                title=title,
                text=text,
                path=reverse(
                    "dashboards:service", kwargs={"service": service, "environment": environment}
                ),
                users=_oncall(oncall, release.service.owner_team_id),
                team=release.service.owner_team.slug,
                context={
                    "release_id": release.pk,
                    "service": service,
                    "environment": environment,
                    "metric": event.metric,
                    "value": event.value,
                    "threshold": event.threshold,
                },
            )
        )
    notification_emit_many(drafts=drafts)


def _oncall(cache: dict[int, tuple], team_id: int) -> tuple:
    if team_id not in cache:
        cache[team_id] = tuple(oncall_recipients(team_id))
    return cache[team_id]
