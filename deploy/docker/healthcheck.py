"""Container health checks without curl (python:*-slim has none), for the image's
HEALTHCHECK and docker-compose.yml.

    python deploy/docker/healthcheck.py web [PATH]   GET PATH (default /healthz) on this
                                                     container's gunicorn; healthy on 200
    python deploy/docker/healthcheck.py worker       the Celery worker on this host answers
                                                     a ping through the broker
    python deploy/docker/healthcheck.py beat         Celery beat wrote its schedule file
                                                     recently

Django refuses a Host header that is not in ALLOWED_HOSTS, so the web check sends the
first concrete name from ALLOWED_HOSTS: the check then works whatever public name the
deployment uses, and needs no exception in Django's host validation.
"""

from __future__ import annotations

import glob
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

TIMEOUT_SECONDS = 4.0
BEAT_SCHEDULE = os.environ.get("CELERY_BEAT_SCHEDULE_FILE", "/var/lib/slipway/celerybeat-schedule")
# Beat saves its schedule at least every 3 minutes while it runs (celery.beat.Scheduler
# sync_every), and Slipway's schedule has entries every few seconds.
BEAT_MAX_AGE_SECONDS = float(os.environ.get("BEAT_HEALTH_MAX_AGE_SECONDS", "600"))


def host_header(allowed_hosts: str) -> str:
    """A Host value Django will accept, from the ALLOWED_HOSTS variable."""
    for raw in allowed_hosts.split(","):
        host = raw.strip()
        if not host or host == "*":
            continue
        if host.startswith("."):  # ".example.com" allows any subdomain
            return "healthcheck" + host
        return host
    return "localhost"


def check_web(path: str = "/healthz") -> int:
    port = os.environ.get("PORT", "8000")
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        # /healthz, /readyz and /metrics are exempt from SECURE_SSL_REDIRECT, so plain
        # HTTP inside the container is answered, not redirected.
        headers={"Host": host_header(os.environ.get("ALLOWED_HOSTS", "localhost"))},
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1


def check_worker() -> int:
    # Celery names a worker celery@<host name> unless told otherwise (-n).
    node = os.environ.get("CELERY_WORKER_NAME") or f"celery@{socket.gethostname()}"
    result = subprocess.run(  # noqa: S603 - fixed argv
        ["celery", "-A", "controlplane", "inspect", "ping", "-d", node, "--timeout", "5"],  # noqa: S607
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if result.returncode != 0:
        print(f"unhealthy: {node} did not answer: {result.stdout[-300:]}", file=sys.stderr)
    return result.returncode


def check_beat() -> int:
    # shelve may add a suffix to the file name, depending on the dbm module available.
    files = glob.glob(glob.escape(BEAT_SCHEDULE) + "*")
    if not files:
        print(f"unhealthy: no schedule file at {BEAT_SCHEDULE}", file=sys.stderr)
        return 1
    age = time.time() - max(os.path.getmtime(f) for f in files)
    if age > BEAT_MAX_AGE_SECONDS:
        print(f"unhealthy: schedule last saved {age:.0f} s ago", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str]) -> int:
    role = argv[0] if argv else "web"
    if role == "web":
        return check_web(argv[1] if len(argv) > 1 else "/healthz")
    if role == "worker":
        return check_worker()
    if role == "beat":
        return check_beat()
    print(f"usage: healthcheck.py web [PATH] | worker | beat (not {role!r})", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
