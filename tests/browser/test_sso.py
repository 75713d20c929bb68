"""Single sign-on end to end in Chromium against a real OpenID Connect provider
(django-oidc-provider in its own process, tests/fixtures/oidc.py): just-in-time users,
roles from groups re-synced at every sign-in, the no-role page, RP-initiated logout,
and the failures a person can meet (provider down, a token that does not verify, the
provider refusing Slipway's client secret) each ending on the sign-in page with a
sentence, nobody signed in."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.contrib.auth import get_user_model

from apps.accounts.roles import user_roles
from apps.audit.models import AuditEvent
from tests import factories
from tests.browser.conftest import screenshot
from tests.browser.test_accessibility import _axe_source, _axe_violations
from tests.fixtures.network import free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SAM = {"username": "sam", "password": "sam-provider-pw", "first_name": "Sam"}


@pytest.fixture
def sso_page(chromium, live_server, oidc_provider):
    """A browser context that may reach only Slipway and the provider."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    outside: list[str] = []
    allowed = (live_server.url, oidc_provider.url, "data:")

    def guard(route):
        if route.request.url.startswith(allowed):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    page = context.new_page()
    page.set_default_timeout(15000)
    yield page
    context.close()
    assert not outside, f"pages tried to load from outside: {outside}"


def _provider_people(oidc_provider, **groups_by_name):
    oidc_provider.setup(
        users=[
            {**SAM, "username": name, "password": f"{name}-provider-pw", "groups": groups}
            for name, groups in groups_by_name.items()
        ]
    )


def _sso_sign_in(page, base_url, provider_url, username):
    page.goto(f"{base_url}/accounts/login/")
    page.click("#sso-sign-in")
    page.wait_for_url(f"{provider_url}/login/**")
    page.fill("#id_username", username)
    page.fill("#id_password", f"{username}-provider-pw")
    page.click("#provider-sign-in")
    page.wait_for_url(lambda url: url.startswith(base_url) and "/sso/" not in url)


def _error_text(page) -> str:
    return page.locator("ul.messages").inner_text()


def test_sign_in_creates_the_person_with_roles_from_groups_and_resyncs(
    sso_settings, sso_page, live_server, oidc_provider
):
    churn = factories.make_team("churn")  # the map grants product-reviewer@churn
    _provider_people(oidc_provider, sam=["slipway-admins", "churn-reviewers", "unmapped"])
    page = sso_page
    _sso_sign_in(page, live_server.url, oidc_provider.url, "sam")
    assert "/accounts/login" not in page.url and "no-role" not in page.url
    sam = get_user_model().objects.get(username="sam")
    assert sam.email == "sam@example.com" and sam.first_name == "Sam"
    assert not sam.has_usable_password()
    assert user_roles(sam) == {"admin", "product-reviewer"}
    assert sam.role_grants.get(team=churn, role="product-reviewer").source == "sso"
    # Between sign-ins an admin makes sam on call for churn: SSO must never undo that.
    factories.grant(sam, "oncall", churn)
    shown = page.locator(".who span").inner_text()  # "sam · product-reviewer, admin"
    assert set(shown.split(" · ")[1].split(", ")) == {"admin", "product-reviewer"}
    screenshot(page, "sso-signed-in")

    # Sign out: Slipway, then the provider's end_session_endpoint, back to the sign-in page.
    page.click(".who button[type=submit]")
    page.wait_for_url(f"{live_server.url}/accounts/login/")
    assert page.locator("#sso-sign-in").is_visible()

    # The provider moves sam out of the admins: the next sign-in takes the role away. The
    # provider's session ended at sign-out, so it asks for the password again.
    _provider_people(oidc_provider, sam=["ml"])
    _sso_sign_in(page, live_server.url, oidc_provider.url, "sam")
    sam = get_user_model().objects.get(username="sam")
    assert user_roles(sam) == {"ml-engineer", "oncall"}
    assert list(sam.role_grants.values_list("role", "team__slug", "source")) == [
        ("oncall", "churn", "admin")
    ]
    changes = AuditEvent.objects.filter(action="user.roles", target_id=str(sam.pk)).order_by("id")
    assert [(e.actor_label, e.after["roles"]) for e in changes] == [
        ("system:sso", ["admin", "product-reviewer"]),
        ("system:sso", ["ml-engineer"]),
    ]
    # The team grant came and went through the grant services, audited one by one.
    grants = AuditEvent.objects.filter(
        action__startswith="role_grant.", target_id=str(sam.pk), actor_label="system:sso"
    ).order_by("id")
    assert [e.action for e in grants] == ["role_grant.add", "role_grant.remove"]
    assert get_user_model().objects.filter(username="sam").count() == 1


def test_a_person_whose_groups_map_to_nothing_sees_why(
    sso_settings, sso_page, live_server, oidc_provider
):
    _provider_people(oidc_provider, una=["marketing", "everyone"])
    page = sso_page
    _sso_sign_in(page, live_server.url, oidc_provider.url, "una")
    assert page.url == f"{live_server.url}/accounts/no-role/"
    text = page.locator("#no-role").inner_text()
    assert "no role in Slipway" in text and "SLIPWAY_OIDC_ROLE_MAP" in text
    assert page.locator("#sso-groups li").all_inner_texts() == ["everyone", "marketing"]
    assert user_roles(get_user_model().objects.get(username="una")) == frozenset()
    assert not _axe_violations(page, _axe_source())
    screenshot(page, "sso-no-role")


def test_provider_down_is_a_message_on_the_sign_in_page(sso_settings, sso_page, live_server):
    sso_settings.OIDC_OP_ISSUER = f"http://127.0.0.1:{free_port()}/openid"
    page = sso_page
    page.goto(f"{live_server.url}/accounts/login/")
    page.click("#sso-sign-in")
    page.wait_for_url(f"{live_server.url}/accounts/login/")
    assert "Test IdP could not be reached" in _error_text(page)
    assert page.locator("#id_password").is_visible()  # passwords still work meanwhile
    # The sign-in page with both ways in and an error is still accessible.
    assert not _axe_violations(page, _axe_source())


def test_a_token_signed_with_another_key_is_refused(
    sso_settings, sso_page, live_server, oidc_provider
):
    """Slipway pins a key the provider no longer signs with (a rotation it missed)."""
    _provider_people(oidc_provider, sam=["slipway-admins"])
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    sso_settings.OIDC_RP_IDP_SIGN_KEY = other.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    page = sso_page
    _sso_sign_in(page, live_server.url, oidc_provider.url, "sam")
    assert page.url == f"{live_server.url}/accounts/login/"
    assert "could not be verified" in _error_text(page)
    assert not get_user_model().objects.filter(username="sam").exists()
    screenshot(page, "sso-bad-signature")


def test_a_wrong_client_secret_is_refused_with_a_message(
    sso_settings, sso_page, live_server, oidc_provider
):
    _provider_people(oidc_provider, sam=["slipway-admins"])
    sso_settings.OIDC_RP_CLIENT_SECRET = "not-the-secret"
    page = sso_page
    _sso_sign_in(page, live_server.url, oidc_provider.url, "sam")
    assert page.url == f"{live_server.url}/accounts/login/"
    text = _error_text(page)
    assert "the provider refused Slipway's request" in text and "client ID and secret" in text
    assert not get_user_model().objects.filter(username="sam").exists()


def test_a_key_rotation_at_the_provider_is_followed(
    sso_settings, sso_page, live_server, oidc_provider
):
    """Slipway reads the provider's JWKS (from discovery) at each sign-in, so a new
    signing key is accepted without a restart."""
    _provider_people(oidc_provider, sam=["ml"])
    page = sso_page
    _sso_sign_in(page, live_server.url, oidc_provider.url, "sam")
    page.click(".who button[type=submit]")
    page.wait_for_url(f"{live_server.url}/accounts/login/")
    oidc_provider.rotate_key()
    _sso_sign_in(page, live_server.url, oidc_provider.url, "sam")
    assert "/accounts/login" not in page.url
    assert user_roles(get_user_model().objects.get(username="sam")) == {"ml-engineer"}
