"""Endpoints from the provider's discovery document (the real test provider), cached,
overridable, and refused when the document names another issuer."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from apps.accounts.oidc_auth import ProviderUnavailable, op_endpoint
from tests.fixtures.network import free_port


@pytest.fixture
def issuer(settings, oidc_provider):
    settings.OIDC_OP_ISSUER = oidc_provider.issuer
    cache.clear()
    yield oidc_provider.issuer
    cache.clear()


def test_endpoints_are_discovered_and_cached(issuer, settings):
    assert op_endpoint("OIDC_OP_TOKEN_ENDPOINT") == f"{issuer}/token"
    assert op_endpoint("OIDC_OP_END_SESSION_ENDPOINT") == f"{issuer}/end-session"
    assert cache.get(f"slipway:oidc-discovery:{issuer}")["jwks_uri"] == f"{issuer}/jwks"
    settings.OIDC_OP_TOKEN_ENDPOINT = "https://elsewhere.example.com/token"
    assert op_endpoint("OIDC_OP_TOKEN_ENDPOINT") == "https://elsewhere.example.com/token"


def test_a_document_naming_another_issuer_is_refused(issuer, settings):
    # Same server, another spelling of the issuer: OIDC Discovery wants an exact match.
    settings.OIDC_OP_ISSUER = issuer.replace("127.0.0.1", "localhost")
    with pytest.raises(ProviderUnavailable, match="names issuer"):
        op_endpoint("OIDC_OP_TOKEN_ENDPOINT")


def test_a_provider_that_is_down_is_provider_unavailable(settings):
    settings.OIDC_OP_ISSUER = f"http://127.0.0.1:{free_port()}/realms/x"
    with pytest.raises(ProviderUnavailable, match="ConnectionError"):
        op_endpoint("OIDC_OP_AUTHORIZATION_ENDPOINT")
