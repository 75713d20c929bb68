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
    n = len(points)
    if threshold >= n or n <= 2:
        return list(points)
    if threshold < 3:
        return [points[0], points[-1]][: max(threshold, 0)]
    xs = [_x(p[0]) for p in points]
    ys = [float(p[1]) for p in points]
    sampled = [points[0]]
    every = (n - 2) / (threshold - 2)
    a = 0  # index of the point kept from the previous bucket
    for i in range(threshold - 2):
        start = int(i * every) + 1
        end = int((i + 1) * every) + 1
        next_start, next_end = end, min(int((i + 2) * every) + 1, n)
        if next_start >= n - 1 or i == threshold - 3:
            next_start, next_end = n - 1, n  # the last bucket looks at the last point
        span = next_end - next_start
        avg_x = sum(xs[next_start:next_end]) / span
        avg_y = sum(ys[next_start:next_end]) / span
        ax, ay = xs[a], ys[a]
        best, best_area = start, -1.0
        for j in range(start, min(end, n - 1)):
            area = abs((ax - avg_x) * (ys[j] - ay) - (ax - xs[j]) * (avg_y - ay))
            if area > best_area:
                best, best_area = j, area
        sampled.append(points[best])
        a = best
    sampled.append(points[-1])
    return sampled
