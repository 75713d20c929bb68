"""Freeze windows: the calendar arithmetic (RFC 5545 rules, IANA zones, DST) and "is it
frozen now, and until when" over overlapping windows in several time zones.

Dates: in 2026 Europe/London goes to summer time on Sunday 29 March (01:00 GMT -> 02:00
BST) and back on Sunday 25 October (02:00 BST -> 01:00 GMT).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from django.core.exceptions import ValidationError

from apps.releases.freeze import freeze_status
from apps.releases.freeze_rules import (
    HORIZON,
    FreezeRuleError,
    calendar_union,
    occurrences,
    window_check,
)
from apps.releases.models import FreezeWindow


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def weekend(zone="Europe/London", **fields) -> FreezeWindow:
    """Every Saturday 00:00 for two days and six hours: until Monday 06:00 local."""
    values = {
        "reason": "Weekend change freeze",
        "time_zone": zone,
        "start_date": date(2026, 1, 3),  # a Saturday
        "start_time": time(0, 0),
        "recurrence": "FREQ=WEEKLY;BYDAY=SA",
        "duration": timedelta(days=2, hours=6),
    }
    return FreezeWindow(**{**values, **fields})


def one_off(reason, zone, start, end, **fields) -> FreezeWindow:
    return FreezeWindow(
        reason=reason,
        time_zone=zone,
        start_date=start.date(),
        start_time=start.time(),
        end_date=end.date(),
        end_time=end.time(),
        **fields,
    )


def test_weekly_window_keeps_its_wall_clock_end_across_the_spring_change():
    # An ordinary weekend: Saturday 00:00 GMT to Monday 06:00 GMT.
    assert list(occurrences(weekend(), utc(2026, 3, 21, 12), utc(2026, 3, 21, 13))) == [
        (utc(2026, 3, 21, 0), utc(2026, 3, 23, 6))
    ]
    # The weekend the clocks go forward: it starts at 00:00 GMT and still ends at Monday
    # 06:00 local time, which is now BST (05:00 UTC): 53 hours, not 54.
    [(start, end)] = occurrences(weekend(), utc(2026, 3, 28, 12), utc(2026, 3, 28, 13))
    assert (start, end) == (utc(2026, 3, 28, 0), utc(2026, 3, 30, 5))
    assert end - start == timedelta(hours=53)


def test_weekly_window_across_the_autumn_change_lasts_an_hour_longer():
    [(start, end)] = occurrences(weekend(), utc(2026, 10, 24, 12), utc(2026, 10, 24, 13))
    # Saturday 00:00 BST = Friday 23:00 UTC; Monday 06:00 GMT = 06:00 UTC.
    assert (start, end) == (utc(2026, 10, 23, 23), utc(2026, 10, 26, 6))
    assert end - start == timedelta(hours=55)


def test_a_skipped_local_time_lands_after_the_gap_and_a_repeated_one_means_the_first():
    nightly = FreezeWindow(
        reason="Nightly batch",
        time_zone="Europe/London",
        start_date=date(2026, 3, 1),
        start_time=time(1, 30),
        recurrence="FREQ=DAILY",
        duration=timedelta(hours=1),
    )
    # 29 March: 01:30 does not exist in London; RFC 5545 reads it with the offset before
    # the gap (GMT), i.e. 01:30 UTC = 02:30 BST.
    [(start, end)] = occurrences(nightly, utc(2026, 3, 29, 1), utc(2026, 3, 29, 2))
    assert (start, end) == (utc(2026, 3, 29, 1, 30), utc(2026, 3, 29, 2, 30))
    # 25 October: 01:30 happens twice; the first one is 01:30 BST = 00:30 UTC.
    [(start, end)] = occurrences(nightly, utc(2026, 10, 25, 0), utc(2026, 10, 25, 3))
    assert start == utc(2026, 10, 25, 0, 30)
    # The elapsed hour stays an hour although the clock repeats it.
    assert end - start == timedelta(hours=1)


def test_frozen_until_follows_overlapping_and_touching_windows_across_zones():
    new_york = one_off(
        "US launch", "America/New_York", datetime(2026, 12, 4, 9), datetime(2026, 12, 4, 17)
    )  # 14:00-22:00 UTC
    tokyo = one_off(
        "Tokyo market open", "Asia/Tokyo", datetime(2026, 12, 5, 6), datetime(2026, 12, 5, 12)
    )  # 21:00 (4th)-03:00 UTC: overlaps New York's
    london = one_off(
        "London handover", "Europe/London", datetime(2026, 12, 5, 3), datetime(2026, 12, 5, 4)
    )  # 03:00-04:00 UTC: starts the instant Tokyo's ends
    later = one_off(
        "Not joined", "UTC", datetime(2026, 12, 5, 4, 1), datetime(2026, 12, 5, 9)
    )  # a minute's gap: not part of the union
    windows = [later, london, tokyo, new_york]

    covering, until, beyond = calendar_union(windows, utc(2026, 12, 4, 15))
    assert [w.reason for w, _, _ in covering] == ["US launch"]
    assert until == utc(2026, 12, 5, 4)
    assert not beyond
    # Inside the overlap both count, and the end is the same.
    covering, until, _ = calendar_union(windows, utc(2026, 12, 4, 21, 30))
    assert {w.reason for w, _, _ in covering} == {"US launch", "Tokyo market open"}
    assert until == utc(2026, 12, 5, 4)
    # At the end instant itself nothing covers: the freeze is over.
    assert calendar_union(windows, utc(2026, 12, 5, 4))[1] is None
    assert calendar_union(windows, utc(2026, 12, 5, 4, 1))[1] == utc(2026, 12, 5, 9)


def test_a_rule_that_never_lets_go_is_reported_up_to_the_horizon():
    always = FreezeWindow(
        reason="Overlapping days",
        time_zone="UTC",
        start_date=date(2026, 1, 1),
        start_time=time(0, 0),
        recurrence="FREQ=DAILY",
        duration=timedelta(days=1, hours=1),
    )
    at = utc(2026, 6, 1, 12)
    _, until, beyond = calendar_union([always], at)
    assert beyond and until == at + HORIZON


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"time_zone": "Mars/Olympus"}, "time_zone", "IANA"),
        ({"recurrence": "FREQ=SOMETIMES"}, "recurrence", "RRULE"),
        ({"recurrence": "FREQ=HOURLY"}, "recurrence", "DAILY, WEEKLY"),
        ({"recurrence": "DTSTART:20260101T000000\nRRULE:FREQ=DAILY"}, "recurrence", "DTSTART"),
        ({"duration": None}, "duration", "positive duration"),
        ({"end_date": date(2026, 1, 5), "end_time": time(0)}, "end_date", "not an end"),
    ],
)
def test_window_check_names_the_field_and_says_why(fields, field, words):
    window = weekend()
    for name, value in fields.items():
        setattr(window, name, value)
    with pytest.raises(FreezeRuleError) as caught:
        window_check(window)
    assert field in caught.value.errors
    assert words in caught.value.errors[field]


def test_one_off_window_must_end_after_it_starts_in_its_own_zone():
    # 02:30 New York is after 01:00 New York on the same day, but a window ending before
    # it starts is refused whatever the zone.
    window = one_off("x", "America/New_York", datetime(2026, 3, 8, 3), datetime(2026, 3, 8, 2))
    with pytest.raises(FreezeRuleError, match="end after it starts"):
        window_check(window)


@pytest.mark.django_db
def test_model_clean_turns_rule_errors_into_field_errors():
    window = weekend(recurrence="FREQ=WEEKLY;BYDAY=XX")
    with pytest.raises(ValidationError) as caught:
        window.full_clean()
    assert "recurrence" in caught.value.message_dict


@pytest.mark.django_db
def test_status_combines_environment_and_organisation_wide_windows(environments):
    staging, prod = environments
    at = utc(2026, 12, 4, 15)
    one_off(
        "Prod launch",
        "America/New_York",
        datetime(2026, 12, 4, 9),
        datetime(2026, 12, 4, 17),
        environment=prod,
    ).save()
    one_off(
        "Company all-hands", "Asia/Tokyo", datetime(2026, 12, 5, 6), datetime(2026, 12, 5, 12)
    ).save()
    one_off(
        "Disabled", "UTC", datetime(2026, 12, 4, 0), datetime(2026, 12, 9, 0), enabled=False
    ).save()

    status = freeze_status(prod, at=at)
    assert status.frozen and status.calendar_until == utc(2026, 12, 5, 3)
    assert [f.reason for f in status.freezes] == ["Prod launch"]
    assert "prod is frozen until 2026-12-05 03:00 UTC" in status.message
    # The organisation-wide window alone covers staging later that evening.
    assert not freeze_status(staging, at=at).frozen
    evening = freeze_status(staging, at=utc(2026, 12, 4, 23))
    assert [(f.reason, f.scope) for f in evening.freezes] == [
        ("Company all-hands", "every environment")
    ]
    assert evening.as_dict()["until"] == "2026-12-05T03:00:00+00:00"
    assert not freeze_status(prod, at=utc(2026, 12, 6)).frozen


@pytest.mark.django_db
def test_a_window_saved_around_the_checks_is_ignored_not_fatal(environments, caplog):
    _staging, prod = environments
    broken = weekend(environment=prod, recurrence="FREQ=MINUTELY")
    broken.save()  # no full_clean: as a script might
    assert not freeze_status(prod, at=utc(2026, 3, 21, 12)).frozen
    assert f"freeze window {broken.pk} is ignored" in caplog.text
