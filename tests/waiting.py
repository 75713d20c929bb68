"""Waiting for something another process or thread does, with a deadline.

A fixed ``time.sleep`` before an assertion is either too short on a busy machine (a
flaky failure) or too long everywhere else; polling a predicate until a deadline is
neither. Every wait in the tests goes through ``wait_until``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T],
    *,
    timeout: float,
    message: str | Callable[[], str],
    interval: float = 0.1,
) -> T:
    """Call ``predicate()`` until it returns something truthy and return that; after
    ``timeout`` seconds fail with ``message`` (what was awaited; a callable is asked
    only then, e.g. for a log tail). The predicate may itself raise to stop early, e.g.
    when the process it waits on has died."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            raise AssertionError(f"timed out after {timeout:g} s waiting for {text}")
        time.sleep(interval)
