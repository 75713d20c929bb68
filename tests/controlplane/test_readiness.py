"""/readyz against the real services: the test PostgreSQL, the Redis broker on
127.0.0.1:6379/15 and bare git repositories made in tmp_path (file://, and a TCP server
that never answers, for the timeout). Then each dependency broken in turn: the answer is
503, the JSON names the failed check with a short reason, and no credential shows.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.db import OperationalError
from django.test import Client

from apps.gitops import ops as gitops_ops
from tests.fixtures.network import free_port
from tests.services import REDIS_URL, need_service, redis_available

ROOT = Path(__file__).resolve().parents[2]
URLS = "tests.controlplane.urls_minimal"
TOKEN = "ghp_" + "Q" * 36  # the shape of a GitHub token, so any leak would be obvious


@pytest.fixture
def redis_broker():
    need_service("Redis", redis_available(), "start redis-server on 127.0.0.1:6379")
    return REDIS_URL


@pytest.fixture
def ready_settings(settings, redis_broker, gitops_remote, tmp_path):
    """Every dependency real and reachable."""
    settings.ROOT_URLCONF = URLS
    settings.CELERY_BROKER_URL = redis_broker
    settings.GITOPS_REPO_URL = gitops_remote.url
    settings.GITOPS_BRANCH = "main"
    settings.GITOPS_WORKDIR = tmp_path / "clone"
    settings.GITOPS_HTTPS_TOKEN = ""
    settings.GITOPS_SSH_KEY_FILE = ""
    settings.READINESS_TIMEOUT_SECONDS = 3
    settings.READINESS_GIT_CACHE_SECONDS = 0
    return settings


def get(path: str = "/readyz"):
    response = Client().get(path)
    return response, json.loads(response.content)


def statuses(body) -> dict[str, str]:
    return {name: check["status"] for name, check in body["checks"].items()}


@pytest.mark.django_db
def test_all_ready_against_real_postgres_redis_and_git(ready_settings):
    response, body = get()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert statuses(body) == {"database": "ok", "broker": "ok", "git": "ok"}
    from django.db import connection

    assert body["checks"]["database"]["detail"] == f"{connection.vendor} answered"
    assert body["checks"]["broker"]["detail"] == "redis broker answered"
    assert body["checks"]["git"]["detail"] == "branch main found"
    assert response["Cache-Control"].startswith("max-age=0")
    for check in body["checks"].values():
        assert isinstance(check["duration_ms"], int)


@pytest.mark.django_db
def test_broken_broker_url_is_503_naming_the_broker(ready_settings):
    ready_settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    started = time.monotonic()
    response, body = get()
    assert time.monotonic() - started < 5
    assert response.status_code == 503
    assert body["status"] == "failed"
    assert statuses(body) == {"database": "ok", "broker": "failed", "git": "ok"}
    assert "refused" in body["checks"]["broker"]["detail"].lower()


@pytest.mark.django_db
def test_broker_password_does_not_leak(ready_settings):
    ready_settings.CELERY_BROKER_URL = "redis://:hunter2-broker-password@127.0.0.1:1/0"
    response, _body = get("/readyz?checks=broker")
    assert response.status_code == 503
    assert "hunter2" not in response.content.decode()


@pytest.mark.django_db
def test_unreachable_git_remote_is_503_naming_git(ready_settings, tmp_path):
    ready_settings.GITOPS_REPO_URL = (tmp_path / "no-such-repo.git").as_uri()
    response, body = get()
    assert response.status_code == 503
    assert statuses(body) == {"database": "ok", "broker": "ok", "git": "failed"}
    assert "exit 128" in body["checks"]["git"]["detail"]


@pytest.fixture
def silent_git_server():
    """A TCP server that accepts git:// connections and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"git://127.0.0.1:{server.getsockname()[1]}/gitops.git"
    stop.set()
    thread.join(timeout=2)
    for conn in held:
        conn.close()
    server.close()


@pytest.mark.django_db
def test_a_git_remote_that_hangs_is_cut_off_at_the_timeout(ready_settings, silent_git_server):
    ready_settings.GITOPS_REPO_URL = silent_git_server
    ready_settings.READINESS_TIMEOUT_SECONDS = 1
    started = time.monotonic()
    response, body = get()
    elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert body["checks"]["git"]["status"] == "failed"
    assert "longer than 1" in body["checks"]["git"]["detail"]
    assert elapsed < 4, f"took {elapsed:.1f} s"


@pytest.mark.django_db
def test_git_credentials_never_reach_the_body(ready_settings):
    ready_settings.GITOPS_REPO_URL = f"https://127.0.0.1:{free_port()}/platform/gitops.git"
    ready_settings.GITOPS_HTTPS_TOKEN = TOKEN
    response, body = get()
    text = response.content.decode()
    assert response.status_code == 503
    assert body["checks"]["git"]["status"] == "failed"
    basic = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    assert TOKEN not in text and basic not in text


@pytest.mark.django_db
def test_a_url_with_credentials_is_refused_by_the_writers_safety_check(ready_settings):
    ready_settings.GITOPS_REPO_URL = "https://bob:s3cret-pass@git.example.com/gitops.git"
    response, body = get("/readyz?checks=git")
    assert response.status_code == 503
    assert "carries credentials" in body["checks"]["git"]["detail"]
    assert "s3cret-pass" not in response.content.decode()


@pytest.mark.django_db
def test_no_repository_configured_is_not_ready(ready_settings):
    ready_settings.GITOPS_REPO_URL = ""
    response, body = get("/readyz?checks=git")
    assert response.status_code == 503
    assert body["checks"]["git"]["detail"] == "GITOPS_REPO_URL is not set"


@pytest.mark.django_db
def test_an_empty_repository_is_ready_for_its_first_commit(ready_settings, empty_remote):
    ready_settings.GITOPS_REPO_URL = empty_remote.url
    response, body = get("/readyz?checks=git")
    assert response.status_code == 200
    assert "does not exist yet" in body["checks"]["git"]["detail"]


@pytest.mark.django_db
def test_database_failure_is_503_naming_the_database(ready_settings, monkeypatch):
    from django.db import connections

    def refuse(*args, **kwargs):
        raise OperationalError("could not connect to server: Connection refused")

    monkeypatch.setattr(connections["default"], "cursor", refuse)
    response, body = get("/readyz?checks=database")
    assert response.status_code == 503
    assert body["checks"]["database"]["detail"].startswith("OperationalError: could not connect")


@pytest.mark.django_db
def test_a_subset_of_checks_can_be_asked_for(ready_settings):
    ready_settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # broken, but not asked
    response, body = get("/readyz?checks=database,git")
    assert response.status_code == 200
    assert list(body["checks"]) == ["database", "git"]
    response = Client().get("/readyz?checks=database,cluster")
    assert response.status_code == 400
    assert "database, broker, git" in json.loads(response.content)["detail"]


@pytest.mark.django_db
def test_only_get_and_head(ready_settings):
    assert Client().head("/readyz?checks=database").status_code == 200
    assert Client().post("/readyz").status_code == 405


@pytest.mark.django_db
def test_the_git_answer_is_reused_for_a_while(ready_settings, gitops_remote):
    """Probing /readyz must not turn into a flood of ls-remote calls on the git host."""
    import shutil

    gitops_ops._git_cache.clear()
    ready_settings.READINESS_GIT_CACHE_SECONDS = 60
    assert get("/readyz?checks=git")[0].status_code == 200
    shutil.rmtree(gitops_remote.path)
    assert get("/readyz?checks=git")[0].status_code == 200  # from the cache
    ready_settings.READINESS_GIT_CACHE_SECONDS = 0
    assert get("/readyz?checks=git")[0].status_code == 503
    gitops_ops._git_cache.clear()


def test_the_command_line_runs_the_same_checks(gitops_remote, tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "GITOPS_REPO_URL": gitops_remote.url,
        "GITOPS_WORKDIR": str(tmp_path / "clone"),
    }
    run = [sys.executable, "-m", "controlplane.readiness", "git"]
    done = subprocess.run(run, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["git"]["status"] == "ok"
    env["GITOPS_REPO_URL"] = (tmp_path / "missing.git").as_uri()
    done = subprocess.run(run, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert json.loads(done.stdout)["git"]["status"] == "failed"
