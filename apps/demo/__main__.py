"""`make demo`: run Slipway on its embedded default, with nothing to install.

Migrates a SQLite database under var/, seeds people, environments, real MLflow models and
a local bare GitOps repository, then starts the web server and a Celery worker with beat
inside it (on a filesystem broker under var/). The worker's cluster and metrics backends
are the demo simulator; every page says so. Ctrl-C stops everything this started.

`python -m apps.demo manage <command> [args]` runs one management command (e.g.
`audit_verify`, `create_api_token`) against the demo's state, with the environment the
demo itself runs with; plain `python manage.py` keeps production's strict settings.

The demo runs with DEBUG off, like production: people see Slipway's own error pages,
never Django's debug page, and static files are collected, compressed and served with
hashed names. Only what a laptop cannot have is relaxed: plain HTTP, and a secret key
generated once into the state folder.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Where the demo keeps its state between runs; the demo's own test points it elsewhere.
VAR = Path(os.environ.get("SLIPWAY_DEMO_DIR", ROOT / "var" / "demo")).resolve()


def _free_port(preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise RuntimeError("no free port")


def _secret_key_file() -> Path:
    """The demo's SECRET_KEY, made once per state folder and kept there (owner-only)."""
    path = VAR / "secret-key"
    if not path.exists():
        VAR.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(50))
    return path


def demo_environment() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("SECRET_KEY", "SECRET_KEY_FILE"):  # the demo's own key, always
        env.pop(name, None)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "controlplane.settings",
            "DEBUG": "0",
            "SECRET_KEY_FILE": str(_secret_key_file()),
            # Plain HTTP on 127.0.0.1: no redirect to HTTPS, cookies without Secure.
            "SECURE_SSL_REDIRECT": "0",
            "SESSION_COOKIE_SECURE": "0",
            "CSRF_COOKIE_SECURE": "0",
            "SECURE_HSTS_SECONDS": "0",
            "LOG_FORMAT": env.get("LOG_FORMAT", "plain"),
            "STATIC_ROOT": str(VAR / "static"),
            "SLIPWAY_DEMO": "1",
            "SLIPWAY_VAR_DIR": str(VAR),
            "GITOPS_REPO_URL": (VAR / "gitops.git").as_uri(),
            "MLFLOW_TRACKING_URI": f"sqlite:///{VAR / 'mlflow' / 'mlflow.db'}",
            "STATUS_POLL_SECONDS": env.get("STATUS_POLL_SECONDS", "2"),
            "METRICS_POLL_SECONDS": env.get("METRICS_POLL_SECONDS", "5"),
            # One worker does everything in the demo; a deploy can hold it for a while.
            "METRICS_STALE_AFTER_SECONDS": env.get("METRICS_STALE_AFTER_SECONDS", "60"),
            "REGISTRY_SYNC_SECONDS": env.get("REGISTRY_SYNC_SECONDS", "30"),
            "DEMO_SYNC_DELAY_SECONDS": env.get("DEMO_SYNC_DELAY_SECONDS", "4"),
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "PYTHONUNBUFFERED": "1",
        }
    )
    for name in ("DATABASE_URL", "CELERY_BROKER_URL"):  # the embedded defaults, always
        env.pop(name, None)
    return env


def _manage(env, *args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True)


def manage(args: list[str]) -> int:
    """Run one management command on the demo's state (`python -m apps.demo manage ...`)."""
    if not args:
        print("usage: python -m apps.demo manage <command> [args]", file=sys.stderr)
        return 2
    if not (VAR / "slipway.sqlite3").exists():
        print(
            f"No demo state in {VAR}: run `make demo` once first (or set SLIPWAY_DEMO_DIR).",
            file=sys.stderr,
        )
        return 2
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=demo_environment(), check=False
    ).returncode


def prepare(env) -> None:
    """Database, static files and seed data: everything before the servers start."""
    _manage(env, "migrate", "--no-input", "-v", "0")
    # Hashed, compressed copies (as in production), so pages load fast and cache well.
    _manage(env, "collectstatic", "--no-input", "-v", "0")
    _manage(env, "demo_seed")


def _wait_healthy(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            # A fixed http://127.0.0.1 URL this runner itself serves.
            health = f"{url}/healthz"
            with urllib.request.urlopen(health, timeout=2) as response:  # noqa: S310 # nosec B310
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url}/healthz did not answer within {timeout:.0f} s")


def main() -> int:
    from apps.demo.people import sign_in_lines

    VAR.mkdir(parents=True, exist_ok=True)
    env = demo_environment()
    port = _free_port(int(os.environ.get("PORT", "8000")))
    url = f"http://127.0.0.1:{port}"
    print("Slipway demo: preparing (first run trains the demo models; later runs keep data)")
    prepare(env)
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "runserver",
                f"127.0.0.1:{port}",
                "--noreload",
                "--skip-checks",
            ],
            cwd=ROOT,
            env=env,
        ),
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "controlplane",
                "worker",
                "--beat",
                "--loglevel=WARNING",
                "--concurrency=2",
                "--schedule",
                str(VAR / "celerybeat-schedule"),
            ],
            cwd=ROOT,
            env=env,
        ),
    ]

    def stop(*_):
        for child in children:
            if child.poll() is None:
                child.terminate()
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()

    signal.signal(signal.SIGTERM, lambda *a: (stop(), sys.exit(0)))
    # Ctrl-C stops everything even when a shell started us with SIGINT ignored (a
    # background job), where Python would otherwise never raise KeyboardInterrupt.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _wait_healthy(url)
        print(f"\nSlipway is running at {url}/  (cluster, Argo CD and metrics are simulated)\n")
        print("Sign in as (password for everyone: slipway-demo):")
        for line in sign_in_lines():
            print(f"  {line}")
        print("\nPress Ctrl-C to stop.\n", flush=True)
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        print("a demo process stopped; shutting down", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping…")
        return 0
    finally:
        stop()


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    if sys.argv[1:2] == ["manage"]:
        sys.exit(manage(sys.argv[2:]))
    if sys.argv[1:2] == ["prepare"]:  # the state `make demo` serves, without serving it
        VAR.mkdir(parents=True, exist_ok=True)
        sys.exit(prepare(demo_environment()))
    sys.exit(main())
