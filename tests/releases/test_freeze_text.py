"""Freeze windows in words (apps/releases/freeze_text.py): what the environments page
tells reviewers and on-call staff instead of the raw RFC 5545 rule. Each description is
checked against the occurrences dateutil actually expands, so a description cannot say
"Saturday" while the rule fires on Sunday."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, time, timedelta

import pytest

from apps.releases.freeze_rules import occurrences
from apps.releases.freeze_text import duration_text, window_text
from apps.releases.models import FreezeWindow

DAY_NAMES = list(calendar.day_name)


def window(rule: str, *, start=date(2026, 1, 3), at=time(0, 0), duration=timedelta(hours=6)):
    return FreezeWindow(
        reason="freeze",
        time_zone="UTC",
        start_date=start,
        start_time=at,
        recurrence=rule,
        duration=duration,
    )


def weekdays_fired(w: FreezeWindow, weeks: int = 6) -> set[str]:
    lo = datetime.combine(w.start_date, time(0), tzinfo=UTC)
    return {DAY_NAMES[s.weekday()] for s, _ in occurrences(w, lo, lo + timedelta(weeks=weeks))}


@pytest.mark.parametrize(
    ("rule", "text", "days"),
    [
        ("FREQ=WEEKLY;BYDAY=SA", "Every Saturday at 18:30 for 6 hours", {"Saturday"}),
        # A weekly rule without BYDAY repeats the weekday of its start (2026-01-03: Saturday).
        ("FREQ=WEEKLY", "Every Saturday at 18:30 for 6 hours", {"Saturday"}),
        ("RRULE:FREQ=WEEKLY;BYDAY=SA,SU", "Every Saturday and Sunday at 18:30 for 6 hours",
         {"Saturday", "Sunday"}),
        ("FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR",
         "Every Monday, Tuesday, Wednesday, Thursday and Friday at 18:30 for 6 hours",
         {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday"}),
        ("FREQ=DAILY", "Every day at 18:30 for 6 hours", set(DAY_NAMES)),
        ("FREQ=WEEKLY;INTERVAL=2;BYDAY=FR", "Every 2 weeks on Friday at 18:30 for 6 hours",
         {"Friday"}),
    ],
)  # fmt: skip
def test_weekday_rules_say_the_days_they_fire_on(rule, text, days):
    w = window(rule, at=time(18, 30))
    assert window_text(w) == text
    assert weekdays_fired(w) == days


def test_monthly_and_yearly_rules_name_their_days():
    monthly = window("FREQ=MONTHLY;BYMONTHDAY=1", duration=timedelta(days=1))
    assert window_text(monthly) == "Every month on day 1 at 00:00 for 1 day"
    lo = datetime(2026, 1, 1, tzinfo=UTC)
    assert {s.day for s, _ in occurrences(monthly, lo, lo + timedelta(days=120))} == {1}

    year_end = window("FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=20,21", duration=timedelta(days=14))
    assert window_text(year_end) == "Every year on days 20 and 21 in December at 00:00 for 14 days"
    # Without BYMONTH/BYMONTHDAY a yearly rule repeats its start date.
    assert window_text(window("FREQ=YEARLY")) == "Every year on 3 January at 00:00 for 6 hours"


def test_count_and_until_are_said():
    assert window_text(window("FREQ=WEEKLY;COUNT=3")).endswith(", 3 times")
    assert window_text(window("FREQ=WEEKLY;UNTIL=20270101T000000Z")).endswith(", until 2027-01-01")


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=MONTHLY;BYDAY=1MO",  # the first Monday: a numbered weekday
        "FREQ=MONTHLY;BYSETPOS=1;BYDAY=MO",
        "FREQ=MONTHLY;BYMONTHDAY=-1",  # the last day of the month
        "FREQ=WEEKLY;BYDAY=SA;BYDAY=SU",  # a part given twice
        "FREQ=HOURLY",
        "FREQ=WEEKLY;INTERVAL=0",
    ],
)
def test_rules_outside_the_common_parts_are_not_put_into_words(rule):
    # None: the page shows the rule itself rather than a description that may be wrong.
    assert window_text(window(rule)) is None


def test_a_one_off_window_needs_no_words():
    one_off = FreezeWindow(
        reason="x",
        time_zone="UTC",
        start_date=date(2026, 12, 24),
        start_time=time(0),
        end_date=date(2026, 12, 27),
        end_time=time(0),
    )
    assert window_text(one_off) is None


@pytest.mark.parametrize(
    ("duration", "text"),
    [
        (timedelta(days=2, hours=6), "2 days 6 hours"),
        (timedelta(hours=1, minutes=30), "1 hour 30 minutes"),
        (timedelta(minutes=1), "1 minute"),
        (timedelta(days=1), "1 day"),
    ],
)
def test_durations_read_as_words(duration, text):
    assert duration_text(duration) == text
