"""OpenID Connect sign-in (mozilla-django-oidc 5.0, authorization code flow with PKCE).

What Slipway adds to the library:

- Endpoints from the issuer's discovery document, fetched when first needed (never at
  start-up: a provider that is down must not stop Slipway, nor password sign-in) and
  cached ``DISCOVERY_CACHE_SECONDS``; an ``OIDC_OP_*_ENDPOINT`` setting overrides one.
- Just-in-time users keyed on ``preferred_username`` (falling back to ``sub``), their
  roles re-synced from the group claim at every sign-in (apps.accounts.oidc).
- Every failure (provider down, a token whose signature does not verify, the provider
  refusing our client credentials) ends on the sign-in page with a sentence saying
  what went wrong, never a 500.
- RP-initiated logout when the provider advertises ``end_session_endpoint``.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import urlencode

import requests
from django.conf import settings
from django.contrib import auth, messages
from django.core.cache import cache
from django.core.exceptions import SuspiciousOperation
from django.http import Http404, HttpResponseRedirect
from django.urls import reverse
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from apps.accounts.oidc import claim_groups, roles_from_claims
from apps.accounts.roles import user_roles
from apps.accounts.signin import user_sync_sso_roles

log = logging.getLogger(__name__)

DISCOVERY_CACHE_SECONDS = 3600
# Setting name -> key in the discovery document.
_DISCOVERED = {
    "OIDC_OP_AUTHORIZATION_ENDPOINT": "authorization_endpoint",
    "OIDC_OP_TOKEN_ENDPOINT": "token_endpoint",
    "OIDC_OP_USER_ENDPOINT": "userinfo_endpoint",
    "OIDC_OP_JWKS_ENDPOINT": "jwks_uri",
    "OIDC_OP_END_SESSION_ENDPOINT": "end_session_endpoint",
}
_SESSION_GROUPS = "slipway_sso_groups"
_USERNAME_UNSAFE = re.compile(r"[^\w.@+-]")


class ProviderUnavailable(Exception):
    """The provider (or its discovery document) could not be read."""


def provider_name() -> str:
    return settings.OIDC_PROVIDER_NAME


def _discovery() -> dict:
    issuer = settings.OIDC_OP_ISSUER
    if not issuer:
        return {}
    key = f"slipway:oidc-discovery:{issuer}"
    try:
        document = cache.get(key)
    except Exception:  # the cache (Redis) is down: read the provider directly
        log.warning("cache unavailable; reading the OIDC discovery document uncached")
        document = None
    if document is None:
        url = f"{issuer}/.well-known/openid-configuration"
        try:
            response = requests.get(
                url, timeout=settings.OIDC_TIMEOUT, verify=settings.OIDC_VERIFY_SSL
            )
            response.raise_for_status()
            document = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise ProviderUnavailable(f"{url}: {exc.__class__.__name__}") from exc
        if document.get("issuer", "").rstrip("/") != issuer:
            # OpenID Connect Discovery 1.0 section 4.3: the issuer must match exactly.
            raise ProviderUnavailable(f"{url} names issuer {document.get('issuer')!r}")
        try:
            cache.set(key, document, DISCOVERY_CACHE_SECONDS)
        except Exception:
            log.warning("cache unavailable; OIDC discovery document not cached")
    return document


def op_endpoint(name: str, *, required: bool = True) -> str:
    """An OIDC_OP_* endpoint: the setting when given, else the discovery document's."""
    value = getattr(settings, name, "")
    if not value:
        value = _discovery().get(_DISCOVERED[name], "")
    if not value and required:
        raise ProviderUnavailable(f"{name} is not set and the provider does not advertise it")
    return value


def username_from_claims(email, claims) -> str:
    """The Slipway username of an SSO identity: ``preferred_username``, else ``sub``."""
    raw = claims.get("preferred_username") or claims.get("sub") or ""
    return _USERNAME_UNSAFE.sub("-", str(raw))[:150]


def _fail(request, message: str) -> None:
    messages.error(request, message)


class SlipwayOidcBackend(OIDCAuthenticationBackend):
    """The library's backend with lazy endpoints, username matching and role re-sync."""

    def __init__(self, *args, **kwargs):
        # Not super().__init__: that reads every endpoint, and Django builds each backend
        # for every authenticate() call, password sign-ins included.
        self.UserModel = auth.get_user_model()
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        self.OIDC_RP_CLIENT_SECRET = settings.OIDC_RP_CLIENT_SECRET
        self.OIDC_RP_SIGN_ALGO = settings.OIDC_RP_SIGN_ALGO
        self.OIDC_RP_IDP_SIGN_KEY = getattr(settings, "OIDC_RP_IDP_SIGN_KEY", None)

    def authenticate(self, request, **kwargs):
        if request is None or not request.GET.get("code") or not request.GET.get("state"):
            return None
        try:
            self.OIDC_OP_TOKEN_ENDPOINT = op_endpoint("OIDC_OP_TOKEN_ENDPOINT")
            self.OIDC_OP_USER_ENDPOINT = op_endpoint("OIDC_OP_USER_ENDPOINT")
            self.OIDC_OP_JWKS_ENDPOINT = (
                None if self.OIDC_RP_IDP_SIGN_KEY else op_endpoint("OIDC_OP_JWKS_ENDPOINT")
            )
            user = super().authenticate(request, **kwargs)
            if user is None:
                # The library logs and returns None when the claims do not identify one
                # person (no sub or username, or several users match).
                _fail(
                    request,
                    f"Sign-in with {provider_name()} did not complete: its answer did not "
                    "identify exactly one person (no sub or preferred_username claim). "
                    "Ask an admin to check the provider's claims for Slipway.",
                )
            return user
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else "?"
            log.warning("OIDC provider answered %s: %s", status, exc)
            _fail(
                request,
                f"Sign-in with {provider_name()} failed: the provider refused Slipway's "
                f"request (HTTP {status}). If this persists, an admin should check the "
                "client ID and secret registered for Slipway.",
            )
        except (ProviderUnavailable, requests.RequestException) as exc:
            log.warning("OIDC provider unavailable: %s", exc)
            _fail(
                request,
                f"{provider_name()} could not be reached, so you could not be signed in. "
                "Try again in a few minutes.",
            )
        except SuspiciousOperation as exc:
            log.warning("OIDC token refused: %s", exc)
            _fail(
                request,
                f"Sign-in refused: the answer from {provider_name()} could not be verified "
                "(its signature or nonce did not match). Nobody was signed in; an admin "
                "should check the provider's signing keys and Slipway's OIDC settings.",
            )
        return None

    def verify_claims(self, claims):
        return bool(claims.get("sub")) and bool(username_from_claims(None, claims))

    def filter_users_by_claims(self, claims):
        return self.UserModel.objects.filter(username=username_from_claims(None, claims))

    def create_user(self, claims):
        user = self.UserModel.objects.create_user(
            username_from_claims(None, claims), email=claims.get("email", "")
        )
        # No usable password: this person signs in through the provider only.
        return self.update_user(user, claims)

    def update_user(self, user, claims):
        fields = {
            "email": claims.get("email", "") or user.email,
            "first_name": (claims.get("given_name") or user.first_name)[:150],
            "last_name": (claims.get("family_name") or user.last_name)[:150],
        }
        changed = [name for name, value in fields.items() if getattr(user, name) != value]
        for name in changed:
            setattr(user, name, fields[name])
        if changed:
            user.save(update_fields=changed)
        groups = claim_groups(claims)
        user_sync_sso_roles(user=user, grants=roles_from_claims(claims), groups=groups)
        self.request.session[_SESSION_GROUPS] = groups[:50]
        return user


class SignInStartView(OIDCAuthenticationRequestView):
    """ "Sign in with <provider>": redirects to the provider, or back to the sign-in page
    with a message when the provider cannot be reached."""

    def __init__(self, *args, **kwargs):
        # Not super().__init__: it reads the authorization endpoint, which may fail.
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID

    def get(self, request):
        if not settings.OIDC_ENABLED:
            raise Http404("Single sign-on is not configured.")
        try:
            self.OIDC_OP_AUTH_ENDPOINT = op_endpoint("OIDC_OP_AUTHORIZATION_ENDPOINT")
        except ProviderUnavailable as exc:
            log.warning("OIDC provider unavailable: %s", exc)
            _fail(
                request,
                f"{provider_name()} could not be reached, so sign-in cannot start. "
                "Try again in a few minutes.",
            )
            return HttpResponseRedirect(reverse("login"))
        return super().get(request)


class SignInCallbackView(OIDCAuthenticationCallbackView):
    """The provider's redirect back. A person whose groups grant no role is signed in
    and sent to the page that says so, rather than to pages they cannot use."""

    def get(self, request):
        if not settings.OIDC_ENABLED:
            raise Http404("Single sign-on is not configured.")
        if request.GET.get("error"):
            _fail(
                request,
                f"{provider_name()} did not sign you in: "
                f"{request.GET.get('error_description') or request.GET['error']}.",
            )
        return super().get(request)

    @property
    def failure_url(self):
        return reverse("login")  # the message saying why is already queued

    @property
    def success_url(self):
        if not user_roles(self.user):
            return reverse("accounts:no_role")
        return super().success_url


def provider_logout_url(request) -> str:
    """Where signing out sends the browser: the provider's end_session_endpoint (so the
    provider's session ends too) when this session came from SSO and the provider
    advertises one; otherwise the sign-in page."""
    local = reverse("login")
    id_token = request.session.get("oidc_id_token")
    if not settings.OIDC_ENABLED or not id_token:
        return local
    try:
        end_session = op_endpoint("OIDC_OP_END_SESSION_ENDPOINT", required=False)
    except ProviderUnavailable:
        return local
    if not end_session:
        return local
    query = urlencode(
        {
            "id_token_hint": id_token,
            "post_logout_redirect_uri": request.build_absolute_uri(local),
            "client_id": settings.OIDC_RP_CLIENT_ID,
        }
    )
    return f"{end_session}{'&' if '?' in end_session else '?'}{query}"


def sso_groups(request) -> list[str]:
    return list(request.session.get(_SESSION_GROUPS, []))
