"""Writers of one repository are serialised: PostgreSQL advisory lock, or a file lock."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import uuid

import pytest

from apps.gitops.errors import RepositoryLockTimeout
from apps.gitops.locks import _lock_path, advisory_key, repository_lock
from apps.gitops.render import render
from tests.gitops.conftest import make_request
from tests.waiting import wait_until


def hold_in_thread(key: str, release: threading.Event, held: threading.Event, **kwargs):
    def run() -> None:
        with repository_lock(key, **kwargs):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=run)
    thread.start()
    assert held.wait(10)
    return thread


def test_advisory_key_is_stable_and_distinct():
    assert advisory_key("a") == advisory_key("a") != advisory_key("b")
    assert -(2**63) <= advisory_key("x") < 2**63


def test_threads_of_one_worker_queue_in_memory(tmp_path):
    release, held = threading.Event(), threading.Event()
    thread = hold_in_thread("repo-url", release, held, backend="file", lock_dir=tmp_path)
    with (
        pytest.raises(RepositoryLockTimeout),
        repository_lock("repo-url", backend="file", lock_dir=tmp_path, timeout=0.2),
    ):
        pass
    with repository_lock("another-repo", backend="file", lock_dir=tmp_path, timeout=0.2):
        pass  # other repositories are not blocked
    release.set()
    thread.join(10)
    with repository_lock("repo-url", backend="file", lock_dir=tmp_path, timeout=1):
        pass


def test_file_lock_excludes_another_process(tmp_path):
    """Without PostgreSQL, another worker process on the host holds the flock."""
    lock_file = _lock_path("repo-url", tmp_path)
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    # flock(1) runs "sleep" with the lock held; both die together with their group.
    holder = subprocess.Popen(["flock", str(lock_file), "sleep", "30"], start_new_session=True)
    try:
        wait_until(
            lambda: subprocess.run(["flock", "-n", str(lock_file), "true"], check=False).returncode,
            timeout=10,
            interval=0.05,
            message="flock(1) to hold the lock",
        )
        with (
            pytest.raises(RepositoryLockTimeout),
            repository_lock("repo-url", backend="file", lock_dir=tmp_path, timeout=0.3),
        ):
            pass
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait(10)
    with repository_lock("repo-url", backend="file", lock_dir=tmp_path, timeout=2):
        pass


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_postgres_advisory_lock_waits_for_another_session_then_times_out():
    """Another worker (another database session) holds the lock: we wait, then give up
    with a retryable error instead of blocking the task forever."""
    from django.db import connections

    key = f"pg-{uuid.uuid4()}"
    other_worker = connections.create_connection("default")
    try:
        with other_worker.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [advisory_key(key)])
        started = time.monotonic()
        with (
            pytest.raises(RepositoryLockTimeout) as caught,
            repository_lock(key, backend="postgres", timeout=0.3),
        ):
            pass
        assert caught.value.retryable
        assert 0.25 <= time.monotonic() - started < 5
        with other_worker.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [advisory_key(key)])
        with repository_lock(key, backend="postgres", timeout=2):
            pass
    finally:
        other_worker.close()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_postgres_lock_is_held_on_the_server():
    """While held, another database session cannot take the same advisory lock."""
    from django.db import connections

    key = f"pg-{uuid.uuid4()}"
    other = connections.create_connection("default")
    try:
        with repository_lock(key, backend="postgres", timeout=2), other.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [advisory_key(key)])
            assert cursor.fetchone()[0] is False
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [advisory_key(key)])
            assert cursor.fetchone()[0] is True
            cursor.execute("SELECT pg_advisory_unlock(%s)", [advisory_key(key)])
    finally:
        other.close()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_writers_with_the_default_postgres_lock(gitops_remote, make_git_writer):
    ids = [str(uuid.uuid4()) for _ in range(4)]
    errors: list[BaseException] = []

    def work(index: int) -> None:
        writer = make_git_writer(gitops_remote.url, name=f"pg{index}", lock="default")
        try:
            for release_id in ids[index::2]:
                writer.commit_release(
                    environment="staging",
                    service="churn",
                    files=render(make_request(release_id=release_id)).files,
                    message="Deploy",
                    trailers={"Release-Id": release_id},
                )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors
    for release_id in ids:
        assert len(gitops_remote.commits_with_trailer("Release-Id", release_id)) == 1
