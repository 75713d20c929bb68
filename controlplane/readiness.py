"""``/readyz``: can this process do its job? Each check the apps registered
(apps/core/ops.py: the database and the Celery broker from apps/core/probes.py, the GitOps
remote from apps/gitops/ops.py) runs with a short timeout, and the JSON body names every
check with its outcome and a short reason. 200 when all pass, 503 otherwise.

``/healthz`` (controlplane.health) only says the process is up; this one talks to the
outside world, so a caller can ask for a subset: ``/readyz?checks=database`` is what the
web pods' Kubernetes readiness probe asks (deploy/kubernetes/base/web.yaml explains why a
shared dependency should not take every replica out of the Service at once), while a
monitor or ``docker compose`` asks for everything.

The endpoint is unauthenticated, so nothing in the body carries a URL's credentials or a
secret: reasons are short and redacted, and the git result is remembered for
``READINESS_GIT_CACHE_SECONDS`` (apps/gitops/ops.py) so that probing this endpoint cannot
be turned into a flood of ``git ls-remote`` calls against the git host.

Run ``python -m controlplane.readiness [check ...]`` for the same checks from a shell
(exit status 0 when ready, 1 otherwise).
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import time

from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from apps.core.ops import CheckResult, ReadinessCheck, readiness_checks, short_reason

logger = logging.getLogger("controlplane.readiness")

DEFAULT_TIMEOUT_SECONDS = 3.0


def _timeout() -> float:
    return float(getattr(settings, "READINESS_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS))


def run_checks(names: list[str], *, timeout: float | None = None) -> dict[str, CheckResult]:
    """Run the named checks, the slow network ones in parallel threads, each bounded by
    ``timeout`` seconds. A check registered ``on_calling_thread`` (the database) runs on
    the calling thread, because Django connections belong to a thread: a probe thread's
    connection would never be reused and never closed."""
    timeout = _timeout() if timeout is None else timeout
    registered = readiness_checks()
    results: dict[str, CheckResult] = {}
    here = [name for name in names if registered[name].on_calling_thread]
    threaded = [name for name in names if not registered[name].on_calling_thread]
    pool = concurrent.futures.ThreadPoolExecutor(
        max_workers=max(1, len(threaded)), thread_name_prefix="readyz"
    )
    try:
        futures = {name: pool.submit(_timed, registered[name].check, timeout) for name in threaded}
        for name in here:
            results[name] = _timed(registered[name].check, timeout)
        for name, future in futures.items():
            try:
                # Each check bounds itself; this is the backstop if one does not.
                results[name] = future.result(timeout=timeout + 2)
            except concurrent.futures.TimeoutError:
                results[name] = CheckResult(False, f"no answer within {timeout + 2:g} s")
            except Exception as exc:  # a bug in a check must not turn into a 500
                logger.exception("Readiness check %s raised", name)
                results[name] = CheckResult(False, short_reason(f"{type(exc).__name__}: {exc}"))
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return {name: results[name] for name in names}


def _timed(check: ReadinessCheck, timeout: float) -> CheckResult:
    start = time.monotonic()
    result = check(timeout)
    elapsed = int((time.monotonic() - start) * 1000)
    return CheckResult(result.ok, result.detail, elapsed)


def _requested(raw: str | None) -> list[str] | None:
    known = list(readiness_checks())
    if not raw:
        return known
    names = [name.strip() for name in raw.split(",") if name.strip()]
    if not names or any(name not in known for name in names):
        return None
    return list(dict.fromkeys(names))


@never_cache
@require_safe
def readyz(request):
    """200 when every requested check passes, 503 otherwise; see the module docstring."""
    names = _requested(request.GET.get("checks"))
    if names is None:
        known = ", ".join(readiness_checks())
        return JsonResponse(
            {"detail": f"checks must be a comma-separated subset of {known}."}, status=400
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
        print(f"usage: python -m controlplane.readiness [{' | '.join(readiness_checks())}] ...")
        return 2
    results = run_checks(names)
    print(json.dumps({name: r.as_dict() for name, r in results.items()}, indent=2))
    return 0 if all(r.ok for r in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
