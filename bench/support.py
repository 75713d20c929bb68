"""Shared set-up for benchmarks: a throwaway database and Django configured for it.

Benchmarks run outside pytest, so they configure Django themselves. On PostgreSQL they
create a database named after the benchmark and the process, and drop it at the end;
without PostgreSQL they fall back to a SQLite file in the work directory and say so.
"""

from __future__ import annotations

import os
from pathlib import Path

ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")


def temporary_postgres(prefix: str) -> str | None:
    """Create an empty PostgreSQL database; its URL, or None when PostgreSQL is absent."""
    try:
        import psycopg

        name = f"{prefix}_{os.getpid()}"
        with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    except Exception as exc:
        print(f"(PostgreSQL not available: {type(exc).__name__}; using SQLite)")
        return None


def drop_postgres(url: str) -> None:
    import psycopg
    from django.db import connections

    connections.close_all()
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}"')


def setup_django(workdir: Path, database_url: str, **env: str) -> None:
    """Configure Django for ``database_url``, migrate it and collect the static files.

    Pages link their scripts and styles through the manifest storage, as deployed; a fresh
    checkout has no collected files, so without them every page would answer 500.
    """
    os.environ["DJANGO_SETTINGS_MODULE"] = "controlplane.settings"
    os.environ.setdefault("SECRET_KEY", "bench-only-not-a-secret")
    os.environ["SLIPWAY_VAR_DIR"] = str(workdir / "var")
    os.environ["STATIC_ROOT"] = str(workdir / "static")
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("LOG_LEVEL", "ERROR")
    os.environ.update(env)

    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    call_command("collectstatic", "--no-input", verbosity=0)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]
