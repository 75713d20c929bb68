"""Largest-Triangle-Three-Buckets downsampling (Steinarsson, 2013), pure Python.

Keeps the first and last points and, from each of ``threshold - 2`` equal buckets in
between, the point forming the largest triangle with the point kept from the bucket
before and the average of the bucket after. Peaks and dips survive, which a plain average
would flatten: a latency spike on a 30-day chart stays visible.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TypeVar

X = TypeVar("X", float, int, datetime)


def _x(value) -> float:
    return value.timestamp() if isinstance(value, datetime) else float(value)


def lttb(points: Sequence[tuple[X, float]], threshold: int) -> list[tuple[X, float]]:
    """At most ``threshold`` of ``points`` (sorted by x), in order, first and last kept.

    ``threshold`` below 3 keeps the first and last points only (or the one point).
    """
    keep = lttb_indices([_x(p[0]) for p in points], [float(p[1]) for p in points], threshold)
    return list(points) if keep is None else [points[i] for i in keep]


def lttb_indices(xs: Sequence[float], ys: Sequence[float], threshold: int) -> list[int] | None:
    """The indices LTTB keeps of the series ``xs`` (ascending) / ``ys``, in order, or None
    when it keeps every point. Works on plain numeric arrays so callers need not build a
    tuple, let alone a datetime, per point (numpy is not a direct dependency; at <= a few
    thousand points per series this pure-Python loop costs ~1-2 ms)."""
    n = len(xs)
    if threshold >= n or n <= 2:
        return None
    if threshold < 3:
        return [0, n - 1][: max(threshold, 0)]
    kept = [0]
    every = (n - 2) / (threshold - 2)
    a = 0  # index of the point kept from the previous bucket
    last = threshold - 3
    for i in range(threshold - 2):
        start = int(i * every) + 1
        end = int((i + 1) * every) + 1
        next_start, next_end = end, min(int((i + 2) * every) + 1, n)
        if next_start >= n - 1 or i == last:
            next_start, next_end = n - 1, n  # the last bucket looks at the last point
        span = next_end - next_start
        avg_x = sum(xs[next_start:next_end]) / span
        avg_y = sum(ys[next_start:next_end]) / span
        ax, ay = xs[a], ys[a]
        # area(j) = |(ax - avg_x) * (y_j - ay) - (ax - x_j) * (avg_y - ay)|, with the
        # constant factors hoisted out of the inner loop.
        dx, dy = ax - avg_x, avg_y - ay
        best, best_area = start, -1.0
        for j in range(start, min(end, n - 1)):
            area = abs(dx * (ys[j] - ay) - (ax - xs[j]) * dy)
            if area > best_area:
                best, best_area = j, area
        kept.append(best)
        a = best
    kept.append(n - 1)
    return kept
