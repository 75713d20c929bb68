"""apps/core/locks.py against the real PostgreSQL and real file locks.

- ``single_flight`` lets one holder in at a time: across PostgreSQL connections (each
  holder has its own session) and, without PostgreSQL, across processes through the
  ``flock`` file; a holder killed with SIGKILL leaves the lock free;
- ``advisory_lock`` waits at most ``timeout`` and then raises the caller's error type,
  on both backends;
- ``lock_key`` is stable across processes, distinct between names, and namespaced.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connections

from apps.core import locks
from apps.core.locks import (
    LockTimeout,
    advisory_lock,
    file_lock,
    lock_file_path,
    lock_key,
    single_flight,
)
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]


class AdapterBusy(Exception):
    """Stands for an adapter's own retryable error (RepositoryLockTimeout)."""


# --- lock_key ---------------------------------------------------------------------------


def test_lock_key_is_a_signed_64_bit_number_stable_across_processes():
    names = ["gitops:https://git.example.com/a.git", "single-flight:metrics.poll", ""]
    keys = [lock_key(name) for name in names]
    assert all(-(2**63) <= key < 2**63 for key in keys)
    # Another interpreter (another hash seed) computes the same numbers: workers on other
    # hosts must agree on them.
    code = f"from apps.core.locks import lock_key; print([lock_key(n) for n in {names!r}])"
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == str(keys)


def test_lock_keys_of_different_names_differ():
    names = [f"{space}:job-{i}" for space in ("single-flight", "gitops") for i in range(5000)]
    assert len({lock_key(name) for name in names}) == len(names)


def test_lock_keys_are_namespaced():
    # Slipway's own prefix: another program's advisory lock on sha256(name) is not ours.
    bare = int.from_bytes(hashlib.sha256(b"metrics.poll").digest()[:8], "big", signed=True)
    assert lock_key("metrics.poll") != bare
    # And each subsystem names its own: the repository lock for a URL is not the
    # single-flight lock of a job that happens to share the string.
    from apps.gitops.locks import advisory_key

    url = "https://git.example.com/gitops.git"
    assert advisory_key(url) == lock_key(f"gitops:{url}") != lock_key(url)
    assert lock_file_path("x", "/locks") != lock_file_path("single-flight:x", "/locks")


# --- single_flight on PostgreSQL -----------------------------------------------------------


def _pg_holds(key: int) -> bool:
    """Does any session hold the advisory lock ``key``? Asked from the server's view."""
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    with connections["default"].cursor() as cursor:
        # A bigint key shows as its high and low 32 bits (classid, objid), objsubid 1.
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND classid = %s::bigint::oid AND objid = %s::bigint::oid AND objsubid = 1",
            [unsigned >> 32, unsigned & 0xFFFFFFFF],
        )
        return cursor.fetchone()[0] > 0


@pytest.mark.postgres
@pytest.mark.django_db
def test_single_flight_lets_one_postgres_session_in():
    name = f"test-{time.monotonic_ns()}"
    key = lock_key(f"single-flight:{name}")
    with single_flight(name) as first:
        assert first
        assert _pg_holds(key)
        # A second holder on its own connection (as another worker would be) is refused.
        with single_flight(name) as second:
            assert not second
    # Closing the dedicated connection ends the session; the server drops its locks as
    # the backend exits, a moment after the client has closed.
    wait_until(
        lambda: not _pg_holds(key), timeout=30, message="closing the connection released the lock"
    )
    with single_flight(name) as again:
        assert again


@pytest.mark.postgres
@pytest.mark.django_db
def test_single_flight_is_not_released_by_the_callers_transaction():
    from django.db import transaction

    name = f"test-{time.monotonic_ns()}"
    with single_flight(name) as mine:
        assert mine
        with transaction.atomic():
            pass
        with pytest.raises(RuntimeError), transaction.atomic():
            raise RuntimeError("rolled back")
        with single_flight(name) as other:
            assert not other


# --- single_flight through the file lock (no PostgreSQL) -----------------------------------

_HOLDER = """
import sys, django
django.setup()
from apps.core.locks import single_flight
with single_flight(sys.argv[1], lock_dir=sys.argv[2]) as mine:
    print("held" if mine else "refused", flush=True)
    sys.stdin.readline()
"""


def _start_holder(name: str, lock_dir: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "TEST_DATABASE_URL": "sqlite://:memory:",  # the embedded set-up: the flock path
    }
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, name, str(lock_dir)],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_single_flight_file_lock_excludes_another_process(tmp_path, monkeypatch):
    monkeypatch.setattr(locks, "on_postgres", lambda: False)
    holder = _start_holder("metrics.poll", tmp_path)
    try:
        with single_flight("metrics.poll", lock_dir=tmp_path) as mine:
            assert not mine
        with single_flight("other.job", lock_dir=tmp_path) as other:
            assert other, "another name is another lock"
    finally:
        holder.communicate("done\n", timeout=30)
    assert holder.returncode == 0
    with single_flight("metrics.poll", lock_dir=tmp_path) as mine:
        assert mine


def test_a_holder_killed_by_sigkill_leaves_the_file_lock_free(tmp_path, monkeypatch):
    monkeypatch.setattr(locks, "on_postgres", lambda: False)
    holder = _start_holder("metrics.poll", tmp_path)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    holder.stdout.close()
    holder.stdin.close()
    with single_flight("metrics.poll", lock_dir=tmp_path) as mine:
        assert mine


# --- advisory_lock times out with the caller's error ---------------------------------------


def test_advisory_lock_on_a_file_times_out_with_the_given_error(tmp_path):
    name = "gitops:https://git.example.com/a.git"
    with file_lock(lock_file_path(name, tmp_path), timeout=5):  # another holder
        started = time.monotonic()
        with (
            pytest.raises(AdapterBusy, match="held the lock"),
            advisory_lock(
                name, timeout=0.3, lock_dir=tmp_path, backend="file", timeout_error=AdapterBusy
            ),
        ):
            pytest.fail("entered a lock someone else holds")
        waited = time.monotonic() - started
    assert 0.3 <= waited < 3
    with advisory_lock(name, timeout=1, lock_dir=tmp_path, backend="file"):
        pass  # free again once the holder left


def test_advisory_lock_default_error_is_retryable_lock_timeout(tmp_path):
    name = "some-lock"
    with (
        file_lock(lock_file_path(name, tmp_path), timeout=5),
        pytest.raises(LockTimeout) as caught,
        advisory_lock(name, timeout=0.1, lock_dir=tmp_path, backend="file"),
    ):
        pass
    assert caught.value.retryable


@pytest.mark.postgres
@pytest.mark.django_db
def test_advisory_lock_on_postgres_times_out_with_the_given_error():
    name = f"gitops:test-{time.monotonic_ns()}"
    other = connections.create_connection("default")  # another worker's session
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [lock_key(name)])
        started = time.monotonic()
        with (
            pytest.raises(AdapterBusy),
            advisory_lock(name, timeout=0.5, backend="postgres", timeout_error=AdapterBusy),
        ):
            pytest.fail("entered a lock another session holds")
        waited = time.monotonic() - started
        assert 0.4 <= waited < 5
    finally:
        other.close()  # ends that session, and its lock with it
    with advisory_lock(name, timeout=2, backend="postgres"):
        assert _pg_holds(lock_key(name))
    assert not _pg_holds(lock_key(name))


# --- the advisory lock keeps its connection -------------------------------------------------


def _lock_backend_pid(name: str) -> int:
    """The server process of the session holding ``name`` (pg_locks, not our own guess)."""
    unsigned = lock_key(name) & 0xFFFFFFFFFFFFFFFF
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND classid = %s::bigint::oid AND objid = %s::bigint::oid AND objsubid = 1",
            [unsigned >> 32, unsigned & 0xFFFFFFFF],
        )
        return cursor.fetchone()[0]


@pytest.mark.postgres
@pytest.mark.django_db
def test_advisory_lock_reuses_one_session_and_releases_on_exit():
    name = f"gitops:test-{time.monotonic_ns()}"
    with advisory_lock(name, timeout=2, backend="postgres"):
        first = _lock_backend_pid(name)
    assert not _pg_holds(lock_key(name)), "released at once, though the session stays open"
    with advisory_lock(name, timeout=2, backend="postgres"):
        assert _lock_backend_pid(name) == first


@pytest.mark.postgres
@pytest.mark.django_db
def test_two_locks_held_at_once_use_two_sessions():
    one, two = (f"gitops:test-{time.monotonic_ns()}-{i}" for i in range(2))
    with (
        advisory_lock(one, timeout=2, backend="postgres"),
        advisory_lock(two, timeout=2, backend="postgres"),
    ):
        assert _lock_backend_pid(one) != _lock_backend_pid(two)


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_broken_idle_lock_connection_is_replaced():
    name = f"gitops:test-{time.monotonic_ns()}"
    with advisory_lock(name, timeout=2, backend="postgres"):
        dead = _lock_backend_pid(name)
    # The server ends the idle session (restart, idle timeout, an operator).
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [dead])
        assert cursor.fetchone()[0], f"backend {dead} was not signalled"
    wait_until(lambda: not _backend_alive(dead), timeout=30, message="the backend exited")

    with advisory_lock(name, timeout=2, backend="postgres"):
        assert _lock_backend_pid(name) != dead


def _backend_alive(pid: int) -> bool:
    with connections["default"].cursor() as cursor:
        # pg_stat_activity is a snapshot held until the transaction ends, and the test runs
        # inside one: without clearing it, the first answer ("alive") repeats forever.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
        return cursor.fetchone()[0] > 0
