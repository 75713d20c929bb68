"""The one waiting helper the tests share: it returns as soon as the predicate holds,
and fails with what it waited for once the deadline passes."""

from __future__ import annotations

import threading
import time

import pytest

from tests.waiting import wait_until


def test_returns_the_first_truthy_value_as_soon_as_it_comes():
    done = threading.Event()
    threading.Timer(0.2, done.set).start()
    started = time.monotonic()
    value = wait_until(lambda: done.is_set() and "done", timeout=10, message="the timer")
    assert value == "done"
    assert time.monotonic() - started < 5  # returned on the poll after the event, not at 10 s


def test_fails_after_the_deadline_naming_what_it_waited_for():
    started = time.monotonic()
    with pytest.raises(AssertionError, match=r"timed out after 0.3 s waiting for nothing"):
        wait_until(lambda: None, timeout=0.3, interval=0.05, message="nothing")
    assert 0.3 <= time.monotonic() - started < 5


def test_a_callable_message_is_asked_only_on_failure():
    asked = []

    def message():
        asked.append(True)
        return "the log tail"

    assert wait_until(lambda: 1, timeout=1, message=message) == 1
    assert asked == []
    with pytest.raises(AssertionError, match="the log tail"):
        wait_until(lambda: 0, timeout=0.1, interval=0.05, message=message)
    assert asked == [True]


def test_the_predicate_can_stop_the_wait_early():
    def died():
        raise RuntimeError("the process exited")

    started = time.monotonic()
    with pytest.raises(RuntimeError, match="exited"):
        wait_until(died, timeout=30, message="a process that died")
    assert time.monotonic() - started < 5
