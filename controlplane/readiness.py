"""``/readyz``: can this process do its job? The database, the Celery broker and the
GitOps remote are each checked with a short timeout, and the JSON body names every check
with its outcome and a short reason. 200 when all pass, 503 otherwise.

``/healthz`` (controlplane.health) only says the process is up; this one talks to the
outside world, so a caller can ask for a subset: ``/readyz?checks=database`` is what the
web pods' Kubernetes readiness probe asks (deploy/kubernetes/base/web.yaml explains why a
shared dependency should not take every replica out of the Service at once), while a
monitor or ``docker compose`` asks for everything.

The endpoint is unauthenticated, so nothing in the body carries a URL's credentials or a
secret: reasons are short, redacted, and the git result is remembered for
``READINESS_GIT_CACHE_SECONDS`` so that probing this endpoint cannot be turned into a
flood of ``git ls-remote`` calls against the git host.

Run ``python -m controlplane.readiness [check ...]`` for the same checks from a shell
(exit status 0 when ready, 1 otherwise).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import connections, transaction
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

logger = logging.getLogger("controlplane.readiness")

DEFAULT_TIMEOUT_SECONDS = 3.0
DEFAULT_GIT_CACHE_SECONDS = 30.0
_MAX_REASON = 200


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    detail: str
    duration_ms: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "status": "ok" if self.ok else "failed",
            "detail": self.detail,
            "duration_ms": self.duration_ms,
        }


def _timeout() -> float:
    return float(getattr(settings, "READINESS_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS))


def _short(text: object) -> str:
    """One line, at most _MAX_REASON characters: enough to act on, too short to leak much."""
    line = " ".join(str(text).split())
    return line if len(line) <= _MAX_REASON else line[: _MAX_REASON - 1] + "…"


# --- the checks -------------------------------------------------------------------------


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
        return CheckResult(False, _short(f"{type(exc).__name__}: {exc}"))
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
        # kombu's messages name host and port, never the password; _short caps the rest.
        from apps.gitops.redact import redact_url

        return CheckResult(False, _short(f"{type(exc).__name__}: {redact_url(str(exc))}"))
    return CheckResult(True, f"{transport} broker answered")


_git_cache: dict[tuple[str, str], tuple[float, CheckResult]] = {}
_git_cache_lock = threading.Lock()


def check_git(timeout: float) -> CheckResult:
    """``git ls-remote`` of the GitOps branch, with the writer's credentials and the
    writer's URL safety check; remembered for READINESS_GIT_CACHE_SECONDS."""
    from apps.gitops.errors import GitOpsError
    from apps.gitops.git_writer import check_remote_url

    url = getattr(settings, "GITOPS_REPO_URL", "")
    if not url:
        return CheckResult(False, "GITOPS_REPO_URL is not set")
    try:
        check_remote_url(url)
    except GitOpsError as exc:
        return CheckResult(False, _short(exc))
    key = (url, settings.GITOPS_BRANCH)
    ttl = float(getattr(settings, "READINESS_GIT_CACHE_SECONDS", DEFAULT_GIT_CACHE_SECONDS))
    now = time.monotonic()
    with _git_cache_lock:
        cached = _git_cache.get(key)
        if cached and now - cached[0] < ttl:
            return cached[1]
    result = _ls_remote(timeout)
    with _git_cache_lock:
        _git_cache[key] = (time.monotonic(), result)
    return result


def _ls_remote(timeout: float) -> CheckResult:
    from apps.gitops.errors import GitOpsError
    from apps.gitops.git_writer import GitWriter

    try:
        # from_settings builds the same environment the writer pushes with: the SSH key
        # and pinned host keys, or the HTTPS token as an extra header (never in the URL or
        # on the command line), prompts off, transport helpers refused.
        remote = GitWriter.from_settings().remote
    except GitOpsError as exc:
        return CheckResult(False, _short(exc))
    # ls-remote needs no working clone: run it from "/", which always exists, so pods
    # that never cloned (web) can run it too. GitWriter._git runs git in its own process
    # group, kills the group on timeout and redacts stderr.
    # TODO(lead): a public GitWriter.ls_remote() would save reaching into _git here.
    probe = GitWriter(dataclasses.replace(remote, workdir=Path("/")))
    try:
        result = probe._git(
            "ls-remote",
            "--heads",
            "--exit-code",
            "--",
            remote.url,
            f"refs/heads/{remote.branch}",
            check=False,
            remote=True,
            timeout=timeout,
        )
    except GitOpsError as exc:  # GitRemoteUnavailable on timeout; message already redacted
        return CheckResult(False, _short(exc))
    finally:
        probe.close()
    branch = remote.branch
    if result.returncode == 0:
        return CheckResult(True, f"branch {branch} found")
    if result.returncode == 2:
        # Reachable, credentials accepted, the branch just does not exist yet: the first
        # deploy creates it, so this is ready.
        return CheckResult(True, f"reachable; branch {branch} does not exist yet")
    lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
    # git's own verdict ("fatal: ...") says more than the advice printed after it.
    verdict = next((line for line in lines if line.startswith(("fatal:", "error:"))), None)
    reason = verdict or (lines[-1] if lines else "no output")
    return CheckResult(False, _short(f"git ls-remote exit {result.returncode}: {reason}"))


CHECKS: dict[str, Callable[[float], CheckResult]] = {
    "database": check_database,
    "broker": check_broker,
    "git": check_git,
}


def run_checks(names: list[str], *, timeout: float | None = None) -> dict[str, CheckResult]:
    """Run the named checks, the slow network ones in parallel threads, each bounded by
    ``timeout`` seconds. The database check runs on the calling thread, because Django
    connections belong to a thread: a probe thread's connection would never be reused
    and never closed."""
    timeout = _timeout() if timeout is None else timeout
    results: dict[str, CheckResult] = {}
    threaded = [name for name in names if name != "database"]
    pool = concurrent.futures.ThreadPoolExecutor(
        max_workers=max(1, len(threaded)), thread_name_prefix="readyz"
    )
    try:
        futures = {name: pool.submit(_timed, CHECKS[name], timeout) for name in threaded}
        if "database" in names:
            results["database"] = _timed(check_database, timeout)
        for name, future in futures.items():
            try:
                # Each check bounds itself; this is the backstop if one does not.
                results[name] = future.result(timeout=timeout + 2)
            except concurrent.futures.TimeoutError:
                results[name] = CheckResult(False, f"no answer within {timeout + 2:g} s")
            except Exception as exc:  # a bug in a check must not turn into a 500
                logger.exception("Readiness check %s raised", name)
                results[name] = CheckResult(False, _short(f"{type(exc).__name__}: {exc}"))
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return {name: results[name] for name in names}


def _timed(check: Callable[[float], CheckResult], timeout: float) -> CheckResult:
    start = time.monotonic()
    result = check(timeout)
    elapsed = int((time.monotonic() - start) * 1000)
    return CheckResult(result.ok, result.detail, elapsed)


def _requested(raw: str | None) -> list[str] | None:
    if not raw:
        return list(CHECKS)
    names = [name.strip() for name in raw.split(",") if name.strip()]
    if not names or any(name not in CHECKS for name in names):
        return None
    return list(dict.fromkeys(names))


@never_cache
@require_safe
def readyz(request):
    """200 when every requested check passes, 503 otherwise; see the module docstring."""
    names = _requested(request.GET.get("checks"))
    if names is None:
        return JsonResponse(
            {"detail": f"checks must be a comma-separated subset of {', '.join(CHECKS)}."},
            status=400,
        )
    results = run_checks(names)
    ready = all(result.ok for result in results.values())
    if not ready:
        failed = {name: r.detail for name, r in results.items() if not r.ok}
        logger.warning("Not ready: %s", failed)
    response = JsonResponse(
        {
            "status": "ok" if ready else "failed",
            "checks": {name: result.as_dict() for name, result in results.items()},
        },
        status=200 if ready else 503,
    )
    # The warning above says what failed; without this Django would also log every
    # failing probe (one every few seconds during an outage) as an ERROR.
    response._has_been_logged = True
    return response


def main(argv: list[str] | None = None) -> int:
    """``python -m controlplane.readiness [database] [broker] [git]``."""
    import os
    import sys

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
    django.setup()
    args = sys.argv[1:] if argv is None else argv
    names = _requested(",".join(args))
    if names is None:
        print(f"usage: python -m controlplane.readiness [{' | '.join(CHECKS)}] ...")
        return 2
    results = run_checks(names)
    print(json.dumps({name: r.as_dict() for name, r in results.items()}, indent=2))
    return 0 if all(r.ok for r in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
