"""PerVersion: a value computed once per key however many requests ask at the same time,
the oldest keys dropped past the size, and a failed computation not kept."""

from __future__ import annotations

import threading

import pytest

from apps.dashboards.per_version import PerVersion


def test_requests_that_arrive_together_compute_once():
    cache = PerVersion(size=4)
    started, release = threading.Event(), threading.Event()
    calls = []

    def slow():
        calls.append(1)
        started.set()
        assert release.wait(10)
        return "ranked"

    results = []
    first = threading.Thread(target=lambda: results.append(cache.get("k", slow)))
    first.start()
    assert started.wait(10)
    others = [
        threading.Thread(target=lambda: results.append(cache.get("k", slow))) for _ in range(5)
    ]
    for thread in others:
        thread.start()
    release.set()
    for thread in [first, *others]:
        thread.join(10)
    assert results == ["ranked"] * 6 and len(calls) == 1


def test_the_oldest_keys_go_first():
    cache = PerVersion(size=2)
    cache.get("a", lambda: 1)
    cache.get("b", lambda: 2)
    cache.get("a", lambda: 0)  # used: stays
    cache.get("c", lambda: 3)
    assert cache.get("a", lambda: "again") == 1
    assert cache.get("b", lambda: "again") == "again"


def test_a_failed_computation_is_not_kept():
    cache = PerVersion(size=2)

    def broken():
        raise RuntimeError("database went away")

    with pytest.raises(RuntimeError):
        cache.get("k", broken)
    assert cache.get("k", lambda: "fine") == "fine"
