"""Production settings are the same settings module with production environment
variables (there is no settings_production.py). With the variables a real deployment
sets (deploy/kubernetes/base/configmap.yaml), Django's deployment checklist
(``manage.py check --deploy``) must find nothing, warnings included.

Then the wiring this folder's modules need from the project: the two middleware in
MIDDLEWARE and the two URLs.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import resolve, reverse

from tests.services import POSTGRES_ADMIN_URL, need_service, postgres_url

ROOT = Path(__file__).resolve().parents[2]


def production_environment(tmp_path: Path) -> dict[str, str]:
    """What a production deployment sets; nothing from the test settings leaks in."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "PYTHONPATH")
    return {
        **{k: v for k, v in os.environ.items() if k in keep},
        "DJANGO_SETTINGS_MODULE": "controlplane.settings",
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "slipway.example.com",
        "CSRF_TRUSTED_ORIGINS": "https://slipway.example.com",
        "DATABASE_URL": POSTGRES_ADMIN_URL,
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/15",
        "SECURE_PROXY_SSL_HEADER": "1",
        # As in deploy/kubernetes/base/configmap.yaml. Django's check asks for it
        # (security.W021); a domain that cannot commit to HTTPS for good leaves it off
        # and accepts that one warning.
        "SECURE_HSTS_PRELOAD": "1",
        "SLIPWAY_VAR_DIR": str(tmp_path / "var"),
        "LOG_FORMAT": "json",
    }


def test_check_deploy_is_clean_under_production_settings(tmp_path):
    need_service("PostgreSQL", postgres_url() is not None, "start PostgreSQL on 127.0.0.1:5432")
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=production_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "System check identified no issues" in output, output


def test_the_secret_key_and_debug_are_what_production_refuses_without(tmp_path):
    """Without SECRET_KEY the settings refuse to start, rather than run with a default."""
    env = production_environment(tmp_path)
    del env["SECRET_KEY"]
    done = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode != 0
    assert "SECRET_KEY is required" in done.stderr


# --- wiring (settings.py / urls.py snippets in the deploy report) ---------------------------


def test_request_metrics_middleware_is_first():
    assert settings.MIDDLEWARE[0] == "controlplane.prometheus.PrometheusMiddleware"


def test_content_security_policy_middleware_is_installed():
    assert "apps.core.security.ContentSecurityPolicyMiddleware" in settings.MIDDLEWARE


@pytest.mark.parametrize(
    ("name", "view"),
    [
        ("readyz", "controlplane.readiness.readyz"),
        ("metrics", "controlplane.prometheus.metrics_view"),
    ],
)
def test_readyz_and_metrics_are_routed(name, view):
    path = reverse(name)
    assert path == f"/{name}"
    assert resolve(path)._func_path == view
    exempt = [pattern for pattern in settings.SECURE_REDIRECT_EXEMPT if pattern == f"^{name}$"]
    assert exempt, f"{name} must stay reachable over plain HTTP for probes and Prometheus"
