"""``breach_windows``: the breaches a chart shades, read from the range asked for.

The rows each query returns are counted at the database cursor, so a selector that reads
a target's whole breach history (as it once did) fails here however right its answer.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from apps.metrics import selectors
from apps.metrics.catalog import Metric
from apps.metrics.models import SloEvent, SloEventKind, SloState
from apps.metrics.selectors import breach_windows
from tests import factories

pytestmark = pytest.mark.django_db

LAT, ERR = Metric.LATENCY_P95_MS, Metric.ERROR_RATE
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
START = NOW - timedelta(hours=6)


@pytest.fixture
def target():
    staging, _prod = factories.make_environments()
    service = factories.make_service()
    for metric in (LAT, ERR):
        SloState.objects.create(service=service, environment=staging, metric=metric)
    return service, staging


def _event(target, metric, kind, started_at, time=None):
    service, environment = target
    return SloEvent.objects.create(
        service=service,
        environment=environment,
        metric=metric,
        kind=kind,
        value=1.0,
        threshold=0.5,
        polls=3,
        started_at=started_at,
        time=time or started_at + timedelta(minutes=1),
    )


def _every_event(target, start, end):
    """The answer read from every event ever (how it was computed before): the reference."""
    service, environment = target
    opened, windows = {}, []
    for e in SloEvent.objects.filter(
        service=service, environment=environment, time__lte=end
    ).order_by("time", "id"):
        if e.kind == SloEventKind.BREACH:
            opened.setdefault(e.metric, e.started_at)
        elif e.metric in opened:
            began = opened.pop(e.metric)
            if e.started_at >= start:
                windows.append((e.metric, began, e.started_at))
    windows.extend((m, b, None) for m, b in opened.items())
    return sorted(windows, key=lambda w: w[1])


class RowsRead:
    """Counts the rows every SELECT returns, at the cursor (PostgreSQL reports them)."""

    def __init__(self):
        self.rows = 0

    def __call__(self, execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if sql.lstrip().upper().startswith("SELECT"):
            self.rows += max(context["cursor"].rowcount, 0)
        return result


def _read(target, start=START, end=NOW):
    counter = RowsRead()
    with connection.execute_wrapper(counter):
        windows = breach_windows(service=target[0], environment=target[1], start=start, end=end)
    return windows, counter.rows


def test_old_breaches_are_not_read_and_one_spanning_the_start_is(target):
    # Two hundred breaches that recovered days before the range.
    for day in range(100):
        began = START - timedelta(days=2, hours=day)
        _event(target, LAT, SloEventKind.BREACH, began)
        _event(target, LAT, SloEventKind.RECOVERY, began + timedelta(minutes=20))
    # Error rate: in breach from before the range start until inside it.
    spanning = START - timedelta(hours=1)
    _event(target, ERR, SloEventKind.BREACH, spanning)
    _event(target, ERR, SloEventKind.RECOVERY, START + timedelta(minutes=30))
    # Latency: a new release restarted judging without a recovery, then it breached again
    # before the range and is still in breach: the window runs from the first of them.
    still = START - timedelta(hours=3)
    _event(target, LAT, SloEventKind.BREACH, still)
    _event(target, LAT, SloEventKind.BREACH, still + timedelta(hours=1))
    # One inside the range, and one after it (not shown).
    inside = START + timedelta(hours=2)
    _event(target, ERR, SloEventKind.BREACH, inside)
    _event(target, ERR, SloEventKind.RECOVERY, inside + timedelta(minutes=10))
    _event(target, ERR, SloEventKind.BREACH, NOW + timedelta(minutes=5))

    windows, rows = _read(target)

    assert windows == [
        (LAT, still, None),
        (ERR, spanning, START + timedelta(minutes=30)),
        (ERR, inside, inside + timedelta(minutes=10)),
    ]
    assert windows == _every_event(target, START, NOW)
    # Three events in the range and one row per judged metric, not the 200 old ones.
    assert rows <= 3 + 2, rows


def test_a_breach_recovered_just_before_the_start_is_not_shown(target):
    began = START - timedelta(hours=2)
    _event(target, LAT, SloEventKind.BREACH, began)
    # Recovered before the start (its streak began then), recorded inside the range.
    _event(
        target,
        LAT,
        SloEventKind.RECOVERY,
        START - timedelta(minutes=5),
        START + timedelta(minutes=1),
    )
    windows, _rows = _read(target)
    assert windows == [] == _every_event(target, START, NOW)


def test_the_row_cap_keeps_the_newest_events(target, monkeypatch):
    monkeypatch.setattr(selectors, "BREACH_EVENTS_CAP", 4)
    open_at_start = START - timedelta(hours=1)
    _event(target, ERR, SloEventKind.BREACH, open_at_start)
    pairs = [START + timedelta(hours=h) for h in range(5)]
    for began in pairs:
        _event(target, LAT, SloEventKind.BREACH, began)
        _event(target, LAT, SloEventKind.RECOVERY, began + timedelta(minutes=10))

    windows, rows = _read(target)

    # The newest four events (two whole breaches) are read, plus what was open before
    # them; the older three breaches of the range are dropped, not half-drawn.
    assert windows == [
        (ERR, open_at_start, None),
        (LAT, pairs[3], pairs[3] + timedelta(minutes=10)),
        (LAT, pairs[4], pairs[4] + timedelta(minutes=10)),
    ]
    assert rows <= 4 + 1 + 2, rows
