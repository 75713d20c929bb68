"""apps/core/backoff.py: the one retry formula every retry in Slipway uses."""

from __future__ import annotations

import random

import pytest

from apps.core.backoff import backoff_delay


def test_the_delay_doubles_from_base():
    delays = [backoff_delay(attempt, base=0.5, cap=1000) for attempt in range(1, 7)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0]


def test_the_delay_never_passes_the_cap():
    assert backoff_delay(5, base=1, cap=10) == 10
    assert [backoff_delay(n, base=3, cap=10) for n in (1, 2, 3)] == [3, 6, 10]


@pytest.mark.parametrize("attempt", [0, -1, -(10**9)])
def test_attempts_below_one_count_as_the_first(attempt):
    assert backoff_delay(attempt, base=2, cap=100) == 2


@pytest.mark.parametrize("attempt", [64, 1025, 10**6, 10**18])
def test_huge_attempt_numbers_give_the_cap_without_overflow(attempt):
    assert backoff_delay(attempt, base=0.5, cap=30) == 30
    assert backoff_delay(attempt, base=1e300, cap=float("inf")) == float("inf")


def test_jitter_stays_within_its_fraction_and_spreads():
    random.seed(20261202)  # reproducible draws; the bounds hold for any seed
    full = backoff_delay(4, base=1, cap=100)
    draws = [backoff_delay(4, base=1, cap=100, jitter=0.5) for _ in range(2000)]
    assert all(0.5 * full <= d <= full for d in draws)
    # Spread over the whole band, not stuck at one end.
    assert min(draws) < 0.55 * full and max(draws) > 0.95 * full


def test_jitter_applies_after_the_cap():
    draws = [backoff_delay(50, base=1, cap=10, jitter=0.25) for _ in range(500)]
    assert all(7.5 <= d <= 10 for d in draws)
