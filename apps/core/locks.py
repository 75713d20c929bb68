"""Locks that span processes and hosts: one key function, three shapes.

- ``single_flight(name)``: a non-blocking lock for periodic jobs. Celery beat fires on
  schedule whether or not the previous run has finished; a poll that overlaps itself
  doubles its load exactly when the system is slow. Yields whether this caller got it.
- ``advisory_lock(name, timeout=...)``: waits up to ``timeout`` seconds, then raises
  ``LockTimeout`` (retryable). Used to serialise writers of one GitOps repository.
- ``file_lock(path, timeout=...)``: the same on one host without PostgreSQL.

On PostgreSQL the lock is a session advisory lock taken on a *dedicated* connection, not
Django's per-thread one: it must not depend on (or be released by) whatever transaction
the caller has open, and an aborted transaction there would make the unlock fail. A
killed worker's lock goes with its connection. Without PostgreSQL (the embedded SQLite
set-up, one host) an ``flock`` file stands in; it goes with the file descriptor.

``advisory_lock`` keeps its dedicated connections for the life of the process (a small
pool: one per lock held at the same moment, so threads never share a session): opening a
PostgreSQL connection costs ~5 ms, most of a GitOps commit's locking. A connection goes
back to the pool only after its unlock succeeded, so an idle pooled session holds no lock;
a broken one is dropped and replaced, and a forked child never touches its parent's.
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


class LockTimeout(Exception):
    """Another holder kept the lock longer than the caller would wait: retry later."""

    retryable = True


def lock_key(name: str) -> int:
    """A signed 64-bit number for ``pg_advisory_lock``, stable across processes and hosts.

    Names carry their own namespace (``"gitops:<url>"``, ``"single-flight:metrics.poll"``)
    so two subsystems never share a key by accident.
    """
    digest = hashlib.sha256(f"slipway:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def lock_file_path(name: str, lock_dir: Path | str | None = None) -> Path:
    """Where the ``flock`` stand-in for ``name`` lives."""
    directory = Path(lock_dir) if lock_dir else Path(tempfile.gettempdir()) / "slipway-locks"
    return directory / f"{lock_key(name) & 0xFFFFFFFFFFFFFFFF:016x}.lock"


_local_locks: dict[str, threading.Lock] = {}
_local_locks_guard = threading.Lock()


def local_lock(name: str) -> threading.Lock:
    """One process-wide lock per name, so threads of one worker queue in memory instead of
    each holding a database connection while they wait."""
    with _local_locks_guard:
        return _local_locks.setdefault(name, threading.Lock())


def on_postgres() -> bool:
    from django.db import connection

    return connection.vendor == "postgresql"


@contextlib.contextmanager
def _dedicated_connection():
    from django.db import connections

    conn = connections.create_connection("default")
    try:
        yield conn
    finally:
        conn.close()  # ends the session, which releases any lock it still holds


@contextlib.contextmanager
def single_flight(name: str, *, lock_dir: Path | str | None = None) -> Iterator[bool]:
    """``with single_flight("metrics.poll") as mine: if mine: ...``"""
    full = f"single-flight:{name}"
    if on_postgres():
        with _dedicated_connection() as conn, conn.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [lock_key(full)])
            yield bool(cursor.fetchone()[0])
        return
    path = lock_file_path(full, lock_dir)
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


@contextlib.contextmanager
def advisory_lock(
    name: str,
    *,
    timeout: float,
    lock_dir: Path | str | None = None,
    backend: str = "auto",
    timeout_error: type[Exception] = LockTimeout,
) -> Iterator[None]:
    """Hold the lock ``name`` for the ``with`` block, waiting at most ``timeout`` seconds.

    ``backend`` is ``"auto"`` (PostgreSQL when the database is PostgreSQL, else a file),
    ``"postgres"`` or ``"file"``. ``timeout_error`` lets an adapter raise its own
    (retryable) error type.
    """
    local = local_lock(name)
    if not local.acquire(timeout=timeout):
        raise timeout_error(f"Another thread of this worker held the lock for {timeout:.0f} s.")
    try:
        use_pg = backend == "postgres" or (backend == "auto" and on_postgres())
        if use_pg:
            with _pg_lock(name, timeout, timeout_error):
                yield
        else:
            with file_lock(
                lock_file_path(name, lock_dir), timeout=timeout, timeout_error=timeout_error
            ):
                yield
    finally:
        local.release()


class _LockConnections:
    """Idle dedicated connections for ``advisory_lock``, kept between uses.

    Keyed by the database settings (tests switch to a test database; an advisory lock
    only excludes sessions of the same database) and by process id (a forked child must
    not speak on its parent's socket: it starts with an empty pool).
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._idle: dict[tuple, list] = {}
        self._pid = os.getpid()

    @staticmethod
    def _key() -> tuple:
        from django.db import connections

        settings = connections.settings["default"]
        return tuple(str(settings.get(k)) for k in ("ENGINE", "NAME", "HOST", "PORT", "USER"))

    def take(self):
        """An idle connection (reused: ``fresh`` False) or a new one (``fresh`` True)."""
        from django.db import connections

        key = self._key()
        with self._guard:
            if self._pid != os.getpid():
                self._idle, self._pid = {}, os.getpid()  # the parent's: abandon, never close
            idle = self._idle.get(key)
            if idle:
                return idle.pop(), False
        conn = connections.create_connection("default")
        # Taken in one thread, maybe closed from another (close_all at shutdown): the
        # pool hands it to one holder at a time, which is the sharing Django guards.
        conn.inc_thread_sharing()
        return conn, True

    def give_back(self, conn) -> None:
        key = self._key()
        with self._guard:
            if self._pid == os.getpid():
                self._idle.setdefault(key, []).append(conn)
                return
        conn.close()

    def close_all(self) -> None:
        """Close every idle connection (tests; a worker shutting down)."""
        with self._guard:
            idle, self._idle = self._idle, {}
            mine = self._pid == os.getpid()
        for conns in idle.values():
            for conn in conns:
                if mine:
                    with contextlib.suppress(Exception):
                        conn.close()


_lock_connections = _LockConnections()
close_lock_connections = _lock_connections.close_all


def _discard(conn) -> None:
    with contextlib.suppress(Exception):
        conn.close()


@contextlib.contextmanager
def _pg_lock(name: str, timeout: float, timeout_error: type[Exception]) -> Iterator[None]:
    from django.db import DatabaseError, InterfaceError, OperationalError

    number = lock_key(name)
    while True:
        conn, fresh = _lock_connections.take()
        try:
            with conn.cursor() as cursor:
                # lock_timeout bounds the wait; it applies to advisory locks too. This
                # first statement also tells a pooled connection that died while idle
                # (server restart, idle timeout) from a live one.
                cursor.execute(
                    "SELECT set_config('lock_timeout', %s, false)", [f"{int(timeout * 1000)}"]
                )
        except (OperationalError, InterfaceError):
            _discard(conn)
            if fresh:
                raise
            continue  # a broken idle connection: replace it
        break
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [number])
    except OperationalError as exc:
        _discard(conn)
        raise timeout_error(f"Another holder kept the lock for {timeout:.0f} s.") from exc
    except BaseException:
        _discard(conn)  # ending the session releases whatever it got
        raise
    try:
        yield
    finally:
        try:
            with conn.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [number])
                released = bool(cursor.fetchone()[0])
        except (DatabaseError, InterfaceError):
            _discard(conn)  # the session (and so the lock) is gone with it
            raise
        if released:
            _lock_connections.give_back(conn)
        else:
            _discard(conn)  # not ours any more: never pool a session we cannot vouch for


@contextlib.contextmanager
def file_lock(
    path: Path, *, timeout: float, timeout_error: type[Exception] = LockTimeout
) -> Iterator[None]:
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
                    raise timeout_error(
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


@contextlib.contextmanager
def try_advisory_lock(name: str) -> Iterator[bool]:
    """Like ``single_flight`` but on the caller's own connection: for short critical
    sections in the request/worker thread where a second connection would be waste.
    On SQLite (one worker) there is nobody to exclude: always True."""
    if not on_postgres():
        yield True
        return
    from django.db import connection

    key = lock_key(name)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        acquired = bool(cursor.fetchone()[0])
    try:
        yield acquired
    finally:
        if acquired:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
