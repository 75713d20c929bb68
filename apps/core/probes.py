"""The readiness checks every process shares: the database and the Celery broker.
Registered by ``CoreConfig.ready()``; the git remote's check belongs to apps/gitops/ops.py."""

from __future__ import annotations

import contextlib

from django.conf import settings
from django.db import connections, transaction

from apps.core.ops import CheckResult, short_reason
from apps.core.redact import redact_url


def check_database(timeout: float) -> CheckResult:
    """``SELECT 1`` on the default database, on this thread's own connection (the one the
    views use), bounded by the connection's ``connect_timeout`` and, on PostgreSQL, a
    ``statement_timeout`` that is rolled back with the probe's transaction."""
    connection = connections["default"]
    try:
        with transaction.atomic(using="default"), connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("SET LOCAL statement_timeout = %s", [int(timeout * 1000)])
            cursor.execute("SELECT 1")
            row = cursor.fetchone()
            # Roll the probe back: SET LOCAL must not outlive it, even inside a caller's
            # transaction (a test, or a savepoint).
            transaction.set_rollback(True, using="default")
    except Exception as exc:
        if not connection.in_atomic_block:
            # A broken connection is not reused by the next probe or request.
            with contextlib.suppress(Exception):
                connection.close()
        return CheckResult(False, short_reason(f"{type(exc).__name__}: {exc}"))
    if row != (1,):
        return CheckResult(False, f"SELECT 1 returned {row!r}")
    return CheckResult(True, f"{connection.vendor} answered")


def check_broker(timeout: float) -> CheckResult:
    """Open a kombu connection to CELERY_BROKER_URL (one attempt, no retry loop) and close
    it. For Redis that is a TCP connect plus PING; for AMQP, the protocol handshake."""
    from kombu import Connection

    url = settings.CELERY_BROKER_URL
    options = dict(getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", None) or {})
    options.update({"socket_timeout": timeout, "socket_connect_timeout": timeout})
    try:
        with Connection(
            url,
            connect_timeout=timeout,
            transport_options=options,
            ssl=getattr(settings, "CELERY_BROKER_USE_SSL", False),
        ) as conn:
            conn.ensure_connection(
                max_retries=1, interval_start=0, interval_step=0, interval_max=0, timeout=timeout
            )
            transport = conn.transport_cls
    except Exception as exc:
        # kombu's messages name host and port, never the password; short_reason caps the rest.
        return CheckResult(False, short_reason(f"{type(exc).__name__}: {redact_url(str(exc))}"))
    return CheckResult(True, f"{transport} broker answered")
