"""Serialise writers of one GitOps repository.

A thin use of ``apps.core.locks``: the lock is named after the repository URL, waits at
most ``timeout`` seconds and raises the adapter's own retryable ``RepositoryLockTimeout``
so the deploy task retries later instead of failing the release.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from apps.core.locks import advisory_lock, file_lock, local_lock, lock_file_path, lock_key
from apps.gitops.errors import RepositoryLockTimeout

Backend = Literal["auto", "postgres", "file"]

__all__ = ["advisory_key", "file_lock", "local_lock", "repository_lock"]


def _name(key: str) -> str:
    return f"gitops:{key}"


def advisory_key(key: str) -> int:
    """The advisory-lock number of the repository ``key`` (its URL)."""
    return lock_key(_name(key))


def _lock_path(key: str, lock_dir: Path | str | None) -> Path:
    return lock_file_path(_name(key), lock_dir)


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
    with advisory_lock(
        _name(key),
        timeout=timeout,
        lock_dir=lock_dir,
        backend=backend,
        timeout_error=RepositoryLockTimeout,
    ):
        yield
