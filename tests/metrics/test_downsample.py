"""LTTB downsampling: never more points than asked, ends kept, peaks kept, order kept."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from apps.metrics.downsample import lttb, lttb_indices


def _series(n: int):
    start = datetime(2024, 1, 1, tzinfo=UTC)
    return [(start + timedelta(seconds=30 * i), math.sin(i / 50)) for i in range(n)]


def test_short_series_come_back_unchanged():
    points = _series(10)
    assert lttb(points, 10) == points
    assert lttb(points, 1000) == points
    assert lttb([], 5) == []


def test_a_long_series_is_cut_to_the_threshold_keeping_both_ends():
    points = _series(2880)  # a day at 30 s
    out = lttb(points, 1000)
    assert len(out) == 1000
    assert out[0] == points[0] and out[-1] == points[-1]


def test_a_single_spike_survives():
    points = [(i, 1.0) for i in range(5000)]
    points[3217] = (3217, 500.0)
    out = lttb(points, 100)
    assert (3217, 500.0) in out
    assert len(out) == 100


def test_tiny_thresholds():
    points = _series(50)
    assert lttb(points, 2) == [points[0], points[-1]]
    assert lttb(points, 1) == [points[0]]
    assert lttb(points, 0) == []


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=0, max_size=400),
    threshold=st.integers(min_value=3, max_value=450),
)
def test_bounds_order_and_membership(values, threshold):
    points = [(i, v) for i, v in enumerate(values)]
    out = lttb(points, threshold)
    assert len(out) == min(len(points), threshold)
    xs = [x for x, _ in out]
    assert xs == sorted(set(xs))  # strictly increasing: no point twice, order kept
    assert set(out) <= set(points)
    if points:
        assert out[0] == points[0] and out[-1] == points[-1]


def test_lttb_indices_on_arrays_pick_the_same_points_as_lttb():
    xs = [i * 30_000_000 for i in range(3000)]  # integer microseconds
    ys = [float((i * 7919) % 1000) for i in range(3000)]
    keep = lttb_indices(xs, ys, 500)
    assert keep is not None and len(keep) == 500
    assert keep == sorted(set(keep)) and keep[0] == 0 and keep[-1] == 2999
    assert [(xs[i], ys[i]) for i in keep] == lttb(list(zip(xs, ys, strict=True)), 500)
    assert lttb_indices(xs[:10], ys[:10], 500) is None  # everything kept
