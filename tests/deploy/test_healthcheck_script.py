"""deploy/docker/healthcheck.py, the container health check (no curl in the slim image).
The web mode against a real gunicorn is in test_gunicorn.py."""

from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path

import pytest

from tests.fixtures.network import free_port

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "slipway_healthcheck", ROOT / "deploy" / "docker" / "healthcheck.py"
)
healthcheck = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(healthcheck)


@pytest.mark.parametrize(
    ("allowed", "host"),
    [
        ("slipway.example.com,10.0.0.7", "slipway.example.com"),
        (" , *, .example.com", "healthcheck.example.com"),
        ("*", "localhost"),
        ("", "localhost"),
    ],
)
def test_the_host_header_is_one_django_accepts(allowed, host):
    assert healthcheck.host_header(allowed) == host


def test_web_is_unhealthy_when_nothing_answers(monkeypatch):
    monkeypatch.setenv("PORT", str(free_port()))
    assert healthcheck.main(["web"]) == 1


def test_beat_is_healthy_while_it_saves_its_schedule(tmp_path, monkeypatch):
    schedule = tmp_path / "celerybeat-schedule"
    monkeypatch.setattr(healthcheck, "BEAT_SCHEDULE", str(schedule))
    assert healthcheck.main(["beat"]) == 1  # never written
    Path(f"{schedule}.db").write_bytes(b"")  # shelve may add a suffix
    assert healthcheck.main(["beat"]) == 0
    old = time.time() - healthcheck.BEAT_MAX_AGE_SECONDS - 60
    os.utime(f"{schedule}.db", (old, old))
    assert healthcheck.main(["beat"]) == 1


def test_unknown_role_is_a_usage_error():
    assert healthcheck.main(["scheduler"]) == 2
