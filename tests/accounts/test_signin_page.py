"""The sign-in page: the SSO button when configured, local passwords switched off
(form hidden, password posts refused, admin login sent to the sign-in page), sign-out,
and the settings behind them read from the environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from apps.core.security import sso_form_action_origins
from tests import factories

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def sso_only(settings):
    settings.OIDC_ENABLED = True
    settings.OIDC_RP_CLIENT_ID = "slipway"
    settings.OIDC_OP_ISSUER = "https://idp.example.com/realms/acme"
    settings.OIDC_PROVIDER_NAME = "Acme SSO"
    settings.SLIPWAY_LOCAL_PASSWORDS = False
    settings.AUTHENTICATION_BACKENDS = [
        "axes.backends.AxesStandaloneBackend",
        "apps.accounts.oidc_auth.SlipwayOidcBackend",
    ]
    return settings


def test_without_sso_the_page_is_the_password_form_only(client):
    page = client.get("/accounts/login/").content.decode()
    assert 'id="id_password"' in page and "sso-sign-in" not in page


def test_with_sso_and_passwords_both_are_offered(client, settings):
    settings.OIDC_ENABLED = True
    settings.OIDC_PROVIDER_NAME = "Acme SSO"
    page = client.get("/accounts/login/?next=/releases/").content.decode()
    assert "Sign in with Acme SSO" in page and 'id="id_password"' in page
    assert 'href="/accounts/sso/start/?next=/releases/"' in page


def test_passwords_off_hides_the_form_and_refuses_password_posts(client, sso_only, alice):
    page = client.get("/accounts/login/").content.decode()
    assert "Sign in with Acme SSO" in page and 'id="id_password"' not in page
    response = client.post(
        "/accounts/login/", {"username": "alice", "password": factories.PASSWORD}
    )
    assert response.status_code == 403
    assert "Password sign-in is switched off" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_passwords_off_sends_the_admin_login_to_the_sign_in_page(client, sso_only, ada):
    response = client.post("/admin/login/", {"username": "ada", "password": factories.PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/accounts/login/"
    assert "_auth_user_id" not in client.session


def test_the_admin_login_still_works_with_passwords_on(client, ada):
    ada.is_superuser = True
    ada.save()
    response = client.post("/admin/login/", {"username": "ada", "password": factories.PASSWORD})
    assert response.status_code == 302 and "_auth_user_id" in client.session


def test_sso_start_is_a_404_when_sso_is_off(client):
    assert client.get("/accounts/sso/start/").status_code == 404
    assert client.get("/accounts/sso/callback/?code=x&state=y").status_code == 404


def test_sign_out_without_sso_lands_on_the_sign_in_page(client, alice):
    client.force_login(alice)
    assert client.get("/accounts/logout/").status_code == 405
    response = client.post("/accounts/logout/")
    assert response.status_code == 302 and response["Location"] == "/accounts/login/"
    assert "_auth_user_id" not in client.session


def test_csp_lets_sign_out_reach_the_provider_only_with_sso(client, sso_only):
    assert sso_form_action_origins() == ("https://idp.example.com",)
    csp = client.get("/accounts/login/")["Content-Security-Policy"]
    assert "form-action 'self' https://idp.example.com;" in csp
    sso_only.OIDC_ENABLED = False
    assert "form-action 'self';" in client.get("/accounts/login/")["Content-Security-Policy"]


def _settings_in_a_process(env: dict, expression: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OIDC_", "AXES_"))}
    clean.update({"SECRET_KEY": "k", "DJANGO_SETTINGS_MODULE": "controlplane.settings", **env})
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings as s; "
            f"print(repr(({expression})))",
        ],
        env=clean,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_settings_from_the_environment(tmp_path):
    secret = tmp_path / "oidc-secret"
    secret.write_text("from-a-file\n")
    done = _settings_in_a_process(
        {
            "OIDC_RP_CLIENT_ID": "slipway",
            "OIDC_RP_CLIENT_SECRET_FILE": str(secret),
            "OIDC_OP_ISSUER": "https://idp.example.com/realms/acme/",
            "SLIPWAY_OIDC_ROLE_MAP": '{"admins": "admin"}',
            "SLIPWAY_LOCAL_PASSWORDS": "0",
            "AXES_COOLOFF_SECONDS": "120",
            "AXES_FAILURE_LIMIT": "7",
            "CACHE_URL": "redis://127.0.0.1:6379/3",
        },
        "s.OIDC_ENABLED, s.OIDC_RP_CLIENT_SECRET, s.OIDC_OP_ISSUER, s.SLIPWAY_OIDC_ROLE_MAP,"
        " s.AUTHENTICATION_BACKENDS, s.AXES_COOLOFF_TIME.total_seconds(), s.AXES_FAILURE_LIMIT,"
        " s.CACHES['default']['BACKEND']",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(
        (
            True,
            "from-a-file",
            "https://idp.example.com/realms/acme",
            {"admins": "admin"},
            ["axes.backends.AxesStandaloneBackend", "apps.accounts.oidc_auth.SlipwayOidcBackend"],
            120.0,
            7,
            "django.core.cache.backends.redis.RedisCache",
        )
    )


@pytest.mark.parametrize(
    "env, fragment",
    [
        ({"SLIPWAY_LOCAL_PASSWORDS": "0"}, "needs single sign-on"),
        ({"AXES_COOLOFF_SECONDS": "15m"}, "AXES_COOLOFF_SECONDS='15m' is not an integer"),
        ({"SLIPWAY_OIDC_ROLE_MAP": "[1"}, "SLIPWAY_OIDC_ROLE_MAP is not valid JSON"),
        ({"CACHE_URL": "memcached://x"}, "CACHE_URL must be a redis:// URL"),
    ],
)
def test_bad_settings_stop_the_start_naming_the_variable(env, fragment):
    done = _settings_in_a_process(env, "s.DEBUG")
    assert done.returncode != 0 and fragment in done.stderr


def test_no_cool_off_means_an_admin_unlocks():
    done = _settings_in_a_process({"AXES_COOLOFF_SECONDS": "0"}, "s.AXES_COOLOFF_TIME")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "None"
