"""Serialise writers of one GitOps repository.

Across hosts, a PostgreSQL session advisory lock keyed by a hash of the repository URL;
without PostgreSQL (the embedded SQLite set-up, one host), an ``fcntl`` lock file. In
both cases a process-local lock first, so threads of one worker queue in memory instead
of each holding a database connection while they wait.

The advisory lock is taken on a dedicated connection, not Django's per-thread default
one: it must not depend on (or be released by) whatever transaction the caller has
open, and an aborted transaction on the default connection would make the unlock fail.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from apps.gitops.errors import RepositoryLockTimeout

Backend = Literal["auto", "postgres", "file"]

_local_locks: dict[str, threading.Lock] = {}
_local_locks_guard = threading.Lock()


def advisory_key(key: str) -> int:
    """A signed 64-bit number for ``pg_advisory_lock``, stable across processes."""
    digest = hashlib.sha256(f"slipway.gitops:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def local_lock(key: str) -> threading.Lock:
    """One process-wide lock per key."""
    with _local_locks_guard:
        return _local_locks.setdefault(key, threading.Lock())


@contextlib.contextmanager
def repository_lock(
    key: str,
    *,
    backend: Backend = "auto",
    lock_dir: Path | str | None = None,
    timeout: float = 300.0,
) -> Iterator[None]:
    """Hold the writer lock for ``key`` (the repository URL) for the ``with`` block.

    Raises ``RepositoryLockTimeout`` (retryable) when another writer keeps it longer
    than ``timeout`` seconds.
    """
    local = local_lock(f"repo:{key}")
    if not local.acquire(timeout=timeout):
        raise RepositoryLockTimeout(
            f"Another deploy in this worker held the repository lock for {timeout:.0f} s."
        )
    try:
        if _use_postgres(backend):
            with _advisory_lock(key, timeout):
                yield
        else:
            with file_lock(_lock_path(key, lock_dir), timeout=timeout):
                yield
    finally:
        local.release()


def _use_postgres(backend: Backend) -> bool:
    if backend == "file":
        return False
    from django.db import connection  # imported late: the file backend needs no Django

    if backend == "postgres":
        return True
    return connection.vendor == "postgresql"


@contextlib.contextmanager
def _advisory_lock(key: str, timeout: float) -> Iterator[None]:
    from django.db import OperationalError, connections

    conn = connections.create_connection("default")
    number = advisory_key(key)
    try:
        with conn.cursor() as cursor:
            # lock_timeout bounds the wait; it applies to advisory locks too.
            cursor.execute(
                "SELECT set_config('lock_timeout', %s, false)", [f"{int(timeout * 1000)}"]
            )
            try:
                cursor.execute("SELECT pg_advisory_lock(%s)", [number])
            except OperationalError as exc:
                raise RepositoryLockTimeout(
                    f"Another deploy held the repository lock for {timeout:.0f} s."
                ) from exc
        try:
            yield
        finally:
            with conn.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [number])
    finally:
        # Closing the session also drops the lock if the unlock above failed.
        conn.close()


def _lock_path(key: str, lock_dir: Path | str | None) -> Path:
    directory = Path(lock_dir) if lock_dir else Path(tempfile.gettempdir()) / "slipway-locks"
    name = hashlib.sha256(key.encode()).hexdigest()[:32]
    return directory / f"repo-{name}.lock"


@contextlib.contextmanager
def file_lock(path: Path, *, timeout: float) -> Iterator[None]:
    """An exclusive ``flock`` on ``path``, polled until ``timeout`` seconds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        deadline = time.monotonic() + timeout
        delay = 0.005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise RepositoryLockTimeout(
                        f"Another process held the lock {path.name} for {timeout:.0f} s."
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
