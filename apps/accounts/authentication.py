from datetime import timedelta

from django.db.models import Q
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from apps.accounts.models import ApiToken, hash_token


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer slw_…`` (``Token`` is accepted too)."""

    keywords = ("bearer", "token")

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].decode(errors="replace").lower() not in self.keywords:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <token>'.")
        try:
            raw = header[1].decode()
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Token contains invalid characters.") from None
        token = (
            ApiToken.objects.select_related("user")
            .filter(key_hash=hash_token(raw), revoked_at__isnull=True)
            .first()
        )
        if token is None or not token.user.is_active:
            raise exceptions.AuthenticationFailed("Invalid or revoked token.")
        now = timezone.now()
        if token.expires_at is not None and token.expires_at <= now:
            raise exceptions.AuthenticationFailed(
                f"Token '{token.name}' ({token.prefix}…) expired at "
                f"{token.expires_at.isoformat(timespec='seconds')}; ask an admin for a new one "
                "(manage.py create_api_token)."
            )
        # Cheap bookkeeping: at most one write a minute per token, and a conditional one,
        # so two processes seeing the same stale time do not both write.
        if token.last_used_at is None or (now - token.last_used_at).total_seconds() >= 60:
            stale = now - timedelta(seconds=60)
            ApiToken.objects.filter(pk=token.pk).filter(
                Q(last_used_at__isnull=True) | Q(last_used_at__lte=stale)
            ).update(last_used_at=now)
        return token.user, token

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """Documents the bearer token in the OpenAPI schema. Without it the schema listed
    only cookie authentication, so clients (and schemathesis) could not know how CI
    authenticates; found by tests/hardening/test_api_fuzz.py."""

    target_class = ApiTokenAuthentication
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "An API token (slw_…) created for a person; see the README. A token may "
                "expire (401 after) and carries scopes: read (GET), release:write "
                "(create, submit, approve, reject, cancel), promote, rollback (403 "
                "naming the missing scope). Over the rate limit: 429 with Retry-After."
            ),
        }
