"""Calendar arithmetic for freeze windows, free of the database so the model can use it
to validate itself: RFC 5545 recurrence rules (python-dateutil), wall-clock times in IANA
zones (``zoneinfo``), and the union of overlapping windows.

Local times follow RFC 5545 section 3.3.5: a wall-clock time that does not exist (the hour
skipped when clocks go forward) is read with the offset before the gap, i.e. it lands
that much later; a time that exists twice (clocks go back) means the first one. Python's
``zoneinfo`` with ``fold=0`` does exactly this. Durations follow section 3.3.6: whole days
are wall-clock days (a "2 days" window from Saturday 00:00 ends Monday 00:00 local time
even across a DST change), the rest is elapsed time.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.rrule import rrule, rrulestr

# How far ahead "until when" follows a chain of windows; a rule whose occurrences overlap
# for ever (a duration longer than its period) is reported as frozen "until at least" this.
HORIZON = timedelta(days=400)
# Finer rules than daily make no sense for a freeze and make expansion slow.
_ALLOWED_FREQUENCIES = {"DAILY", "WEEKLY", "MONTHLY", "YEARLY"}


class FreezeRuleError(ValueError):
    """A window the arithmetic cannot use; ``errors`` maps form fields to messages."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise FreezeRuleError({"time_zone": f"{name!r} is not an IANA time zone"}) from None


def local_to_utc(naive: datetime, zone: ZoneInfo) -> datetime:
    """A wall-clock time in ``zone`` as an instant (RFC 5545 3.3.5: fold=0 reads a skipped
    time with the offset before the gap, and a repeated time as its first occurrence)."""
    return naive.replace(tzinfo=zone, fold=0).astimezone(UTC)


def _occurrence_end(start_local: datetime, duration: timedelta, zone: ZoneInfo) -> datetime:
    """RFC 5545 3.3.6: whole days are nominal (wall-clock), the rest is elapsed time."""
    nominal = local_to_utc(start_local + timedelta(days=duration.days), zone)
    return nominal + (duration - timedelta(days=duration.days))


def _rule(window) -> rrule:
    text = (window.recurrence or "").strip()
    if text.upper().startswith("RRULE:"):
        text = text[6:]
    if not text or "\n" in text or "DTSTART" in text.upper():
        raise FreezeRuleError(
            {"recurrence": "one RRULE line without DTSTART, e.g. FREQ=WEEKLY;BYDAY=SA"}
        )
    start = datetime.combine(window.start_date, window.start_time)
    try:
        rule = rrulestr(text, dtstart=start)
    except (ValueError, TypeError) as exc:
        raise FreezeRuleError({"recurrence": f"not an RFC 5545 RRULE: {exc}"}) from None
    frequency = re.search(r"FREQ=([A-Z]+)", text.upper())
    if not isinstance(rule, rrule) or frequency is None or frequency[1] not in _ALLOWED_FREQUENCIES:
        raise FreezeRuleError(
            {"recurrence": "use FREQ=DAILY, WEEKLY, MONTHLY or YEARLY for a freeze"}
        )
    return rule


def window_check(window) -> None:
    """Raise FreezeRuleError naming each field the window gets wrong."""
    zone = _zone(window.time_zone)
    if window.start_date is None or window.start_time is None:
        raise FreezeRuleError({"start_date": "a window needs a start date and time"})
    if window.recurrence:
        if window.duration is None or window.duration <= timedelta(0):
            raise FreezeRuleError({"duration": "a recurring window needs a positive duration"})
        if window.end_date is not None or window.end_time is not None:
            raise FreezeRuleError(
                {"end_date": "a recurring window has a duration, not an end; leave it empty"}
            )
        _rule(window)
        return
    if window.duration is not None:
        raise FreezeRuleError({"duration": "only recurring windows have a duration"})
    if window.end_date is None or window.end_time is None:
        raise FreezeRuleError(
            {"end_date": "a one-off window needs an end date and time (or give a recurrence)"}
        )
    start = local_to_utc(datetime.combine(window.start_date, window.start_time), zone)
    end = local_to_utc(datetime.combine(window.end_date, window.end_time), zone)
    if end <= start:
        raise FreezeRuleError({"end_date": "the window must end after it starts"})


def occurrences(window, lo: datetime, hi: datetime) -> Iterator[tuple[datetime, datetime]]:
    """The window's occurrences, as UTC (start, end), that overlap [lo, hi)."""
    zone = _zone(window.time_zone)
    if not window.recurrence:
        start = local_to_utc(datetime.combine(window.start_date, window.start_time), zone)
        end = local_to_utc(datetime.combine(window.end_date, window.end_time), zone)
        if start < hi and end > lo:
            yield start, end
        return
    rule = _rule(window)
    duration = window.duration
    # Search in local wall time, widened by the duration (an occurrence that began
    # earlier may still run) and a day each side for the zone's offset.
    lo_local = lo.astimezone(zone).replace(tzinfo=None) - duration - timedelta(days=1)
    hi_local = hi.astimezone(zone).replace(tzinfo=None) + timedelta(days=1)
    for start_local in rule.between(lo_local, hi_local, inc=True):
        start = local_to_utc(start_local, zone)
        end = _occurrence_end(start_local, duration, zone)
        if start < hi and end > lo:
            yield start, end


def _covering(windows, at: datetime) -> list[tuple[object, datetime, datetime]]:
    """(window, start, end) of every occurrence running at the instant ``at``."""
    instant = at + timedelta(microseconds=1)
    return [
        (window, start, end)
        for window in windows
        for start, end in occurrences(window, at, instant)
        if start <= at < end
    ]


def calendar_union(windows, at: datetime) -> tuple[list, datetime | None, bool]:
    """(occurrences covering ``at``, end of the union of overlapping or touching
    occurrences from there, whether the chain ran past HORIZON)."""
    covering = _covering(windows, at)
    if not covering:
        return [], None, False
    until = max(end for _, _, end in covering)
    limit = at + HORIZON
    # Follow the chain: any occurrence running at the current end (it began before or
    # exactly then) carries the freeze on to its own end.
    while until < limit:
        carried = max((end for _, _, end in _covering(windows, until)), default=until)
        if carried <= until:
            return covering, until, False
        until = carried
    return covering, limit, True


def local_date_time(moment: datetime, zone: str) -> tuple[date, time]:
    """Split an instant into the wall-clock date and time of ``zone`` (tests, demo)."""
    local = moment.astimezone(ZoneInfo(zone))
    return local.date(), local.time().replace(tzinfo=None)
