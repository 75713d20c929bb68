"""Shared fixtures for the hardening tests: API tokens for named people, real Celery
workers on Redis DB 14 against the test database, and the list of processes a test
started (each stopped by PID when the test ends, pass or fail)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from apps.accounts.services import api_token_create
from tests.hardening.support import BROKER_URL, PYTHON, Process, child_env, redis_db


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


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    """Every Process a test appends here is stopped when the test ends, pass or fail."""
    started: list[Process] = []
    try:
        yield started
    finally:
        for process in started:
            process.stop()


# --- Celery workers on the real Redis -------------------------------------------------
@pytest.fixture
def broker(transactional_db):
    """Redis DB 14, empty at the start and at the end; a Celery app that sends to it."""
    from celery import Celery

    from tests.services import need_service, redis_available

    need_service("Redis", redis_available(), "start redis-server on 127.0.0.1:6379")
    redis_db().flushdb()
    # Not the current app: the services keep sending to the in-memory broker of
    # tests.settings; tests send to Redis explicitly, where the on_commit would.
    app = Celery("hardening-sender", broker=BROKER_URL, set_as_current=False)
    app.conf.update(task_serializer="json", accept_content=["json"], broker_connection_retry=True)
    try:
        yield app
    finally:
        app.close()
        with contextlib.suppress(Exception):
            redis_db().flushdb()


@pytest.fixture
def start_worker(transactional_db, broker, processes, tmp_path):
    """start_worker(name, failpoints="deploy.after_push", beat=True, **env) -> Process: a
    real ``celery worker`` (solo pool, so a failpoint's SIGKILL kills the worker itself)
    on the test database and Redis DB 14. Stopped by PID when the test ends; listed after
    transactional_db so it is gone before the tables are flushed."""

    def start(name: str, *, failpoints: str = "", beat: bool = False, **env: str) -> Process:
        argv = [
            PYTHON,
            "-m",
            "celery",
            "-A",
            "controlplane",
            "worker",
            "--pool=solo",
            "-Q",
            "celery",
            "-n",
            f"{name}@%h",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
            "-l",
            "INFO",
        ]
        if beat:
            argv += ["-B", "--schedule", str(tmp_path / f"beat-{name}")]
        variables = {
            "CELERY_BROKER_URL": BROKER_URL,
            "GITOPS_WORKDIR": str(tmp_path / "worker-clone"),
            "GITOPS_PUSH_MAX_ATTEMPTS": "3",
            "GITOPS_TIMEOUT_SECONDS": "20",
            **env,
        }
        if failpoints:
            variables["SLIPWAY_FAILPOINTS"] = failpoints
        process = Process(
            argv, env=child_env(tmp_path, **variables), log=tmp_path / f"worker-{name}.log"
        )
        processes.append(process)
        return process

    return start
