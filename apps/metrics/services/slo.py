"""SLO judging: advance each live release's streaks with a poll's readings, breach after
K bad polls in a row, recover after R good ones, and write the state, the events and their
audit rows.

Runs inside the poll's write transaction, so a cycle's samples and the judgements made on
them commit together or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta

from apps.audit.services import audit_record_many
from apps.metrics import conf
from apps.metrics.catalog import SLO_METRICS
from apps.metrics.models import SloEvent, SloEventKind, SloState
from apps.metrics.notify import slo_notify
from apps.metrics.selectors import LiveTarget
from apps.metrics.services._batch import WRITE_BATCH
from apps.metrics.services._rows import upsert_rows
from apps.metrics.sources import Reading
from apps.releases.models import Release

METRICS_ACTOR = "metrics"


def slo_judge(
    *,
    live: Sequence[LiveTarget],
    readings: dict[tuple[str, str, str], Reading],
    now: datetime,
) -> tuple[list[SloEvent], dict[int, list[JudgedState]]]:
    """Advance every target's SLO streaks with this cycle's readings; breach after K bad
    polls in a row, recover after R good ones. Returns the events and, per release, the
    SLOs currently in breach (what the guard looks at).

    A poll without a reading for a metric (source down, no traffic) is no evidence either
    way: the streak neither grows nor breaks. Streaks belong to the live release: when it
    changes they start over, so one release is never judged on another's numbers; and a
    reading whose window reaches back before the release went live is not judged at all.
    The caller holds the transaction (the poll's write).
    """
    breach_after = int(conf.get("METRICS_SLO_BREACH_POLLS"))
    recover_after = int(conf.get("METRICS_SLO_RECOVERY_POLLS"))
    known = {
        (row[0], row[1], row[2]): JudgedState(*row)
        for row in SloState.objects.values_list(*_STATE_FIELDS)
    }
    states, events, breached = [], [], {}
    for item in live:
        release_id = item.release_id
        for slo_key, metric in SLO_METRICS.items():
            threshold = item.target.slo.get(slo_key)
            key = (item.service_id, item.environment_id, metric)
            state = known.get(key)
            if state is None:
                if threshold is None:
                    continue
                state = JudgedState(key[0], key[1], metric, release_id)
            if state.release_id != release_id or threshold is None:
                _restart(state, release_id)
            state.threshold = threshold
            reading = readings.get((item.target.service, item.target.environment, metric))
            if threshold is not None and reading is not None and _judgeable(reading, item.live_at):
                event = _advance(state, reading.value, now, breach_after, recover_after)
                if event is not None:
                    event.release_id = release_id
                    events.append(event)
            if state.in_breach:
                breached.setdefault(release_id, []).append(state)
            states.append(state)
            known.pop(key, None)
    # Targets with nothing live any more: their judgements no longer describe anything.
    for state in known.values():
        if state.in_breach or state.last_evaluated_at is not None:
            _restart(state, None)
            states.append(state)
    upsert_rows(
        SloState,
        _STATE_FIELDS,
        [state.row() for state in states],
        unique=["service_id", "environment_id", "metric"],
        update=_STATE_FIELDS[3:],
    )
    if events:
        _with_releases(events)
        # One INSERT for the events and one append of all their audit rows to the chain:
        # a poll in which every service breaches costs what a poll with one breach does.
        SloEvent.objects.bulk_create(events, batch_size=WRITE_BATCH)
        audit_record_many(system_actor=METRICS_ACTOR, events=[_audit_entry(e) for e in events])
        # The outbox rows commit with the judgement (or roll back with it).
        slo_notify(events)
    return events, breached


@dataclass(slots=True)
class JudgedState:
    """One ``SloState`` row as the judge works on it: its columns as plain attributes
    (the fields' names, in ``_STATE_FIELDS`` order), without a model instance each (a
    10,000-service fleet has 40,000 of them, loaded and written back every poll). The
    guard reads the same attributes."""

    service_id: int
    environment_id: int
    metric: str
    release_id: int | None
    threshold: float | None = None
    last_value: float | None = None
    last_evaluated_at: datetime | None = None
    consecutive_bad: int = 0
    consecutive_good: int = 0
    streak_since: datetime | None = None
    in_breach: bool = False
    breach_started_at: datetime | None = None

    def row(self) -> tuple:
        # Not dataclasses.astuple: it deep-copies every value, 40,000 rows a poll.
        return tuple(getattr(self, name) for name in _STATE_FIELDS)


# The SloState columns the judge reads and writes back, in JudgedState's order.
_STATE_FIELDS = tuple(f.name for f in fields(JudgedState))


def _restart(state: JudgedState, release_id: int | None) -> None:
    state.release_id = release_id
    state.consecutive_bad = state.consecutive_good = 0
    state.streak_since = None
    state.in_breach = False
    state.breach_started_at = None
    state.last_value = None
    state.last_evaluated_at = None


def _judgeable(reading: Reading, live_at: datetime | None) -> bool:
    if live_at is None:
        return True
    return reading.time - timedelta(seconds=reading.window_seconds) >= live_at


def _with_releases(events: Sequence[SloEvent]) -> None:
    """Each event's release, with what the notification names (service, team,
    environment, model version): one query for all of them."""
    releases = Release.objects.select_related(
        "service__owner_team", "environment", "model_version"
    ).in_bulk({event.release_id for event in events})
    for event in events:
        event.release = releases[event.release_id]


def _advance(
    state: JudgedState, value: float, now: datetime, breach_after: int, recover_after: int
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


def _event(state: JudgedState, kind: str, polls: int, now: datetime) -> SloEvent:
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


def _audit_entry(event: SloEvent) -> dict:
    return {
        "action": f"slo.{event.kind}",
        "target_type": "release",
        "target_id": event.release_id,
        "after": {
            "service_id": event.service_id,
            "environment_id": event.environment_id,
            "metric": event.metric,
            "value": event.value,
            "threshold": event.threshold,
            "polls": event.polls,
            "since": event.started_at.isoformat(),
        },
    }
