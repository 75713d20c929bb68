"""Helpers for tests that start real processes: the environment a child needs to share
this test run's database and keys, a process handle that stops its whole process group
by PID. (Waiting with a deadline is tests.waiting.wait_until.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from django.db import connection

from tests.processes import stop_process_group

ROOT = Path(__file__).resolve().parents[2]


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
        stop_process_group(self.popen, grace=grace)
        self._log_handle.close()

    def output(self, tail: int = 6000) -> str:
        try:
            return self.log.read_text(errors="replace")[-tail:]
        except OSError:
            return ""


PYTHON = sys.executable


BROKER_URL = "redis://127.0.0.1:6379/14"  # DB 14: this suite's own


def redis_db():
    import redis

    return redis.Redis.from_url(BROKER_URL, socket_timeout=5, socket_connect_timeout=5)


def worker_env(gitops_remote, kube_api) -> dict[str, str]:
    """Settings for a real deploy worker: the test's bare repository as the GitOps remote,
    the Kubernetes API double as the cluster, and a one-second status poll."""
    from tests.fixtures.kube import TOKEN

    return {
        "GITOPS_REPO_URL": gitops_remote.url,
        "CLUSTER_BACKEND": "kubernetes",
        "KUBE_API_URL": kube_api.url,
        "KUBE_TOKEN": TOKEN,
        "STATUS_POLL_SECONDS": "1",
    }


def release_id_trailers(gitops_remote) -> list[str]:
    """Release-Id trailers on the branch, oldest first."""
    return [
        m.split("Release-Id: ")[1].split()[0]
        for m in reversed(gitops_remote.messages())
        if "Release-Id: " in m
    ]
