"""Shared fixtures for the hardening tests: API tokens for named people, and helpers to
start real processes (a Celery worker, gunicorn) against the test database and stop
them by PID whatever happens."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection

from apps.accounts.services import api_token_create

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def token_for(people):
    """token_for("pat") -> the raw bearer token of a fresh API token for pat."""
    made: dict[str, str] = {}

    def make(name: str) -> str:
        if name not in made:
            _token, raw = api_token_create(user=people[name], name=f"hardening-{name}")
            made[name] = raw
        return made[name]

    return make


def database_name() -> str:
    """The database this pytest run created (pytest-django's test_<name>)."""
    return connection.settings_dict["NAME"]


def child_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment for a subprocess that must see the same database, secret key and
    audit key as this test process (tests.hardening.worker_settings reads it)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLIPWAY_FAILPOINTS", "PYTEST_", "GIT_"))
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "tests.hardening.worker_settings",
            "SLIPWAY_TEST_DATABASE_NAME": database_name(),
            "SLIPWAY_VAR_DIR": str(tmp_path / "var"),
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


class Process:
    """A subprocess in its own process group, with its output in a log file; ``stop()``
    ends the group by PID (never by name) and is safe to call twice."""

    def __init__(self, argv: list[str], *, env: dict[str, str], log: Path, cwd: Path = ROOT):
        self.log = log
        self._log_handle = log.open("ab")
        self.popen = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait(self, timeout: float) -> int | None:
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, *, grace: float = 10.0) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            if self.wait(grace) is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=10)
        else:
            # The leader may be gone (SIGKILLed) while its children live on.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
        self._log_handle.close()

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-6000:]
        except OSError:
            return ""


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    """Every Process a test appends here is stopped when the test ends, pass or fail."""
    started: list[Process] = []
    try:
        yield started
    finally:
        for process in started:
            process.stop()


def wait_for(condition, *, timeout: float, interval: float = 0.1, what: str = "condition"):
    """Poll ``condition()`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


PYTHON = sys.executable
