"""Run a periodic job in at most one place at a time.

Celery beat fires on schedule whether or not the previous run has finished; a poll
cycle that overlaps itself doubles its load exactly when the system is slow. ``single_flight``
takes a non-blocking lock (a PostgreSQL session advisory lock on its own connection,
so it spans workers and hosts; an flock file with SQLite) and says whether this caller
got it. A killed worker's lock goes with its connection or its file descriptor.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from django.db import connection, connections


def _key(name: str) -> int:
    return int.from_bytes(
        hashlib.sha256(f"slipway.single-flight:{name}".encode()).digest()[:8], "big", signed=True
    )


@contextlib.contextmanager
def single_flight(name: str) -> Iterator[bool]:
    """``with single_flight("metrics.poll") as mine: if mine: ...``"""
    if connection.vendor == "postgresql":
        conn = connections.create_connection("default")
        try:
            with conn.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_lock(%s)", [_key(name)])
                acquired = bool(cursor.fetchone()[0])
            yield acquired
        finally:
            conn.close()  # ends the session, which releases the lock
        return
    path = (
        Path(tempfile.gettempdir()) / "slipway-locks" / f"flight-{_key(name) & 0xFFFFFFFF:08x}.lock"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)
