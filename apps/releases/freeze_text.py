"""Freeze windows in words, for the people who read the environments page.

Reviewers and on-call staff are not expected to read RFC 5545: ``FREQ=WEEKLY;BYDAY=SA``
with a duration of ``2 days, 6:00:00`` becomes "Every Saturday at 00:00 for 2 days
6 hours". Only the rule parts a freeze commonly uses are put into words; a rule with any
other part (BYSETPOS, BYWEEKNO, a numbered weekday such as ``1MO``...) is described as
``None`` and the page shows the rule itself, so nothing is ever described wrongly.
"""

from __future__ import annotations

import calendar
from datetime import timedelta

_DAYS = {
    "MO": "Monday",
    "TU": "Tuesday",
    "WE": "Wednesday",
    "TH": "Thursday",
    "FR": "Friday",
    "SA": "Saturday",
    "SU": "Sunday",
}
_UNITS = {"DAILY": "day", "WEEKLY": "week", "MONTHLY": "month", "YEARLY": "year"}
_KNOWN_PARTS = {"FREQ", "INTERVAL", "BYDAY", "BYMONTHDAY", "BYMONTH", "COUNT", "UNTIL", "WKST"}


def _plural(count: int, unit: str) -> str:
    return f"{count} {unit}" if count == 1 else f"{count} {unit}s"


def duration_text(duration: timedelta) -> str:
    """``2 days, 6:00:00`` -> "2 days 6 hours"; ``1:30:00`` -> "1 hour 30 minutes"."""
    minutes = int(duration.total_seconds()) // 60 - duration.days * 24 * 60
    parts = []
    if duration.days:
        parts.append(_plural(duration.days, "day"))
    if minutes // 60:
        parts.append(_plural(minutes // 60, "hour"))
    if minutes % 60:
        parts.append(_plural(minutes % 60, "minute"))
    return " ".join(parts) or "0 minutes"


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _parts(rule: str) -> dict[str, str] | None:
    text = rule.strip()
    if text.upper().startswith("RRULE:"):
        text = text[6:]
    parts = {}
    for item in text.upper().split(";"):
        key, sep, value = item.partition("=")
        if not sep or key not in _KNOWN_PARTS or key in parts:
            return None
        parts[key] = value
    return parts


def _days(value: str) -> list[str] | None:
    codes = value.split(",")
    if not all(code in _DAYS for code in codes):
        return None  # "1MO", "-1FR": a numbered weekday is left to the rule itself
    return [_DAYS[code] for code in codes]


def _every(parts: dict[str, str], start_date) -> str | None:
    frequency = parts.get("FREQ")
    interval = parts.get("INTERVAL", "1")
    if frequency not in _UNITS or not interval.isdigit() or int(interval) < 1:
        return None
    unit = _UNITS[frequency]
    days = _days(parts["BYDAY"]) if "BYDAY" in parts else []
    month_days = parts.get("BYMONTHDAY", "").split(",") if "BYMONTHDAY" in parts else []
    months = parts.get("BYMONTH", "").split(",") if "BYMONTH" in parts else []
    if days is None or not all(d.isdigit() and 1 <= int(d) <= 31 for d in month_days):
        return None  # numbered weekdays, negative month days: the rule says it best
    if not all(m.isdigit() and 1 <= int(m) <= 12 for m in months):
        return None
    if not days and frequency == "WEEKLY":
        days = [list(_DAYS.values())[start_date.weekday()]]  # the rule repeats its start's day
    if days and not month_days and not months and interval == "1" and unit in ("day", "week"):
        return "Every " + _and(days)  # "Every Saturday", not "Every week on Saturday"
    pieces = ["Every " + (unit if interval == "1" else _plural(int(interval), unit))]
    if days:
        pieces.append("on " + _and(days))
    if month_days:
        pieces.append(("on day " if len(month_days) == 1 else "on days ") + _and(month_days))
    elif frequency == "MONTHLY" and not days:
        pieces.append(f"on day {start_date.day}")
    if months:
        pieces.append("in " + _and([calendar.month_name[int(m)] for m in months]))
    elif frequency == "YEARLY" and not month_days and not days:
        pieces.append(f"on {start_date.day} {calendar.month_name[start_date.month]}")
    return " ".join(pieces)


def window_text(window) -> str | None:
    """The window in words, or None when only the rule itself says it exactly."""
    if not window.recurrence or window.duration is None:
        return None
    when = f"at {window.start_time:%H:%M}"
    parts = _parts(window.recurrence)
    if parts is None:
        return None
    every = _every(parts, window.start_date)
    if every is None:
        return None
    text = f"{every} {when} for {duration_text(window.duration)}"
    if "COUNT" in parts:
        if not parts["COUNT"].isdigit():
            return None
        text += f", {_plural(int(parts['COUNT']), 'time')}"
    if "UNTIL" in parts:
        until = parts["UNTIL"][:8]
        if not until.isdigit():
            return None
        text += f", until {until[:4]}-{until[4:6]}-{until[6:]}"
    return text
