"""`make demo`: run Slipway on its embedded default, with nothing to install.

Migrates a SQLite database under var/, seeds people, environments, real MLflow models and
a local bare GitOps repository, then starts the web server and a Celery worker with beat
inside it (on a filesystem broker under var/). The worker's cluster and metrics backends
are the demo simulator; every page says so. Ctrl-C stops everything this started.

`python -m apps.demo manage <command> [args]` runs one manage.py command on the demo's
state instead (e.g. `audit_verify`): a bare `python manage.py` would read the production
defaults (no DEBUG, no SECRET_KEY, another database) and refuse or look at the wrong data.
"""

from __future__ import annotations

import os
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


def demo_environment() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "controlplane.settings",
            "DEBUG": "1",
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


def manage(args: list[str]) -> int:
    """Run ``manage.py <args>`` on the demo's state; its exit code."""
    if not args:
        print("usage: python -m apps.demo manage <command> [args]", file=sys.stderr)
        return 2
    command = [sys.executable, "manage.py", *args]
    return subprocess.run(command, cwd=ROOT, env=demo_environment(), check=False).returncode


def main() -> int:
    from apps.demo.people import sign_in_lines

    VAR.mkdir(parents=True, exist_ok=True)
    env = demo_environment()
    port = _free_port(int(os.environ.get("PORT", "8000")))
    url = f"http://127.0.0.1:{port}"
    print("Slipway demo: preparing (first run trains the demo models; later runs keep data)")
    _manage(env, "migrate", "--no-input", "-v", "0")
    _manage(env, "demo_seed")
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
    sys.exit(main())
