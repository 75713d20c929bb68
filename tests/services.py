"""Finding the real services the tests use, and failing or skipping when one is missing.

In CI REQUIRE_SERVICES=1: a missing service is a failure. Elsewhere the tests that need
it skip, saying which service and how to start it.
"""

from __future__ import annotations

import os
import shutil
import socket

import pytest

POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def services_required() -> bool:
    return os.environ.get("REQUIRE_SERVICES", "") == "1"


def _port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def postgres_url() -> str | None:
    """The URL the suite should use for PostgreSQL, or None when none is reachable."""
    if _port_open("127.0.0.1", 5432):
        return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/slipway"
    if services_required():
        raise RuntimeError(
            "REQUIRE_SERVICES=1 but PostgreSQL does not answer on 127.0.0.1:5432; "
            "start it (see .ci/run) or unset REQUIRE_SERVICES."
        )
    return None


def need_service(name: str, available: bool, how_to_start: str) -> None:
    """Skip (or fail under REQUIRE_SERVICES=1) when a service is missing."""
    if available:
        return
    message = f"{name} is not available: {how_to_start}"
    if services_required():
        pytest.fail(f"REQUIRE_SERVICES=1: {message}")
    pytest.skip(message)


def need_executable(name: str, package: str) -> str:
    path = shutil.which(name) or (
        f"/usr/bin/{name}" if os.path.exists(f"/usr/bin/{name}") else None
    )
    need_service(name, path is not None, f"install the Debian package '{package}'")
    return path


def redis_available() -> bool:
    return _port_open("127.0.0.1", 6379)
