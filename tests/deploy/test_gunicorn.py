"""The web process as the image runs it: gunicorn with deploy/gunicorn.conf.py and two
workers, production settings from environment variables, the test PostgreSQL and Redis.

- /healthz answers, and the container health-check script (deploy/docker/healthcheck.py)
  gets a 200 with the Host header it derives from ALLOWED_HOSTS;
- /readyz answers through gunicorn against the real database and broker;
- request counters are summed over both workers (PROMETHEUS_MULTIPROC_DIR): whichever
  worker answers a scrape, the count moved by exactly the number of requests made;
- the metrics directory is emptied when gunicorn starts;
- a real Prometheus scrapes /metrics and can query Slipway's series;
- the responses carry the security headers a production deployment promises.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from django.db import connection
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.network import free_port
from tests.services import REDIS_URL, need_service, redis_available
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
METRICS_TOKEN = "gunicorn-test-scrape-token-" + "x" * 20
pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def _database_url() -> str:
    s = connection.settings_dict
    user = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{user}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


@pytest.fixture
def gunicorn(transactional_db, tmp_path):
    need_service("Redis", redis_available(), "start redis-server on 127.0.0.1:6379")
    port = free_port()
    metrics_dir = tmp_path / "prometheus-multiproc"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"left over from a previous run")
    env = {
        **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "PYTHONPATH")},
        "DJANGO_SETTINGS_MODULE": "controlplane.settings",
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "slipway.example.com,127.0.0.1",
        "CSRF_TRUSTED_ORIGINS": "https://slipway.example.com",
        "SECURE_PROXY_SSL_HEADER": "1",
        "DATABASE_URL": _database_url(),
        "DB_CONN_MAX_AGE": "0",
        "CELERY_BROKER_URL": REDIS_URL,
        "SLIPWAY_VAR_DIR": str(tmp_path / "var"),
        "PORT": str(port),
        "GUNICORN_WORKERS": "2",
        "GUNICORN_THREADS": "2",
        "GUNICORN_WORKER_TMP_DIR": str(tmp_path),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "LOG_LEVEL": "WARNING",
        # /metrics is closed without a token; Prometheus below scrapes with this one.
        "METRICS_TOKEN": METRICS_TOKEN,
    }
    log = (tmp_path / "gunicorn.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--config", "deploy/gunicorn.conf.py"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        if process.poll() is not None:
            pytest.fail((tmp_path / "gunicorn.log").read_text()[-3000:])
        with contextlib.suppress(requests.RequestException):
            return requests.get(f"{base}/healthz", timeout=2).status_code == 200
        return False

    wait_until(answers, timeout=60, interval=0.2, message="gunicorn to answer /healthz")
    try:
        yield {
            "base": base,
            "env": env,
            "port": port,
            "metrics_dir": metrics_dir,
            "pid": process.pid,
        }
    finally:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        log.close()


def healthz_count(base: str) -> float:
    text = requests.get(
        f"{base}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10
    ).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (
                sample.name == "slipway_controlplane_http_requests_total"
                and sample.labels.get("view") == "healthz"
                and sample.labels.get("status") == "200"
            ):
                return sample.value
    return 0.0


def settled_healthz_count(base: str) -> float:
    """The count once it stops moving: health checks the fixture sent while gunicorn
    booted may still be finishing (on a loaded machine they time out client-side and
    the server answers them later), and would be counted as the test's own."""
    seen = [healthz_count(base)]

    def unchanged() -> bool:
        now = healthz_count(base)
        same, seen[0] = now == seen[0], now
        return same

    wait_until(unchanged, timeout=30, interval=0.5, message="the healthz count to settle")
    return seen[0]


def test_counts_are_summed_over_workers_and_scraped_by_prometheus(gunicorn, prometheus_factory):
    base = gunicorn["base"]
    assert not (gunicorn["metrics_dir"] / "counter_999999.db").exists(), "not emptied at start"
    before = settled_healthz_count(base)
    for _ in range(40):
        # A new connection each time, so both workers get some of them.
        assert requests.get(f"{base}/healthz", headers={"Connection": "close"}, timeout=5).ok
    for _ in range(6):  # whichever worker answers the scrape
        assert healthz_count(base) - before == 40
    files = sorted(p.name for p in gunicorn["metrics_dir"].glob("counter_*.db"))
    assert len(files) >= 2, f"one file per worker expected: {files}"

    assert requests.get(f"{base}/metrics", timeout=10).status_code == 401
    token_file = gunicorn["metrics_dir"].parent / "metrics-token"
    token_file.write_text(METRICS_TOKEN + "\n")
    prometheus = prometheus_factory(
        scrape_targets=[f"127.0.0.1:{gunicorn['port']}"], credentials_file=token_file
    )
    result = wait_until(
        lambda: prometheus.query(
            'slipway_controlplane_http_requests_total{view="healthz",status="200"}'
        ),
        timeout=30,
        interval=0.5,
        message=lambda: f"Prometheus to scrape gunicorn:\n{prometheus.log_tail()}",
    )
    assert sum(float(r["value"][1]) for r in result) >= 40
    up = prometheus.query("up")
    assert up and up[0]["value"][1] == "1"
    assert prometheus.query("slipway_controlplane_state_collect_ok == 1")


def test_container_health_check_and_readiness_through_gunicorn(gunicorn):
    env = gunicorn["env"]
    check = [sys.executable, "deploy/docker/healthcheck.py", "web", "/healthz"]
    done = subprocess.run(check, cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    ready = [
        sys.executable,
        "deploy/docker/healthcheck.py",
        "web",
        "/readyz?checks=database,broker",
    ]
    done = subprocess.run(ready, cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    body = requests.get(
        f"{gunicorn['base']}/readyz?checks=database,broker",
        headers={"Host": "slipway.example.com"},
        timeout=10,
    ).json()
    assert body["checks"]["database"]["detail"] == "postgresql answered"
    assert body["checks"]["broker"]["detail"] == "redis broker answered"
    # A Host the deployment does not serve is refused, health check or not.
    bad = {**env, "ALLOWED_HOSTS": "evil.example.net"}
    done = subprocess.run(check, cwd=ROOT, env=bad, capture_output=True, text=True, timeout=30)
    assert done.returncode == 1


def test_production_responses_carry_the_security_headers(gunicorn):
    base = gunicorn["base"]
    # Behind the TLS proxy: the request arrives as https.
    response = requests.get(
        f"{base}/healthz",
        headers={"Host": "slipway.example.com", "X-Forwarded-Proto": "https"},
        timeout=5,
    )
    assert response.status_code == 200
    assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Request-ID"]
    # Plain HTTP to a page is redirected to HTTPS; the probes' paths are not.
    page = requests.get(
        f"{base}/accounts/login/",
        headers={"Host": "slipway.example.com"},
        allow_redirects=False,
        timeout=5,
    )
    assert page.status_code == 301
    assert page.headers["Location"].startswith("https://slipway.example.com/")
