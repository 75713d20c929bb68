import hashlib
import secrets

from django.conf import settings
from django.db import models

TOKEN_PREFIX = "slw_"  # noqa: S105 - a public prefix, not a secret


class TokenScope(models.TextChoices):
    """What an API token may do. ``read``: every GET; ``release:write``: create, submit,
    approve, reject, cancel releases; ``promote`` and ``rollback``: those actions."""

    READ = "read", "read"
    RELEASE_WRITE = "release:write", "create and decide releases"
    PROMOTE = "promote", "promote releases"
    ROLLBACK = "rollback", "roll back"


ALL_SCOPES = tuple(TokenScope.values)


def _all_scopes() -> list[str]:
    return list(ALL_SCOPES)


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiToken(models.Model):
    """A bearer token for CI pipelines. Only its SHA-256 is stored; the raw value is
    shown once, when created."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, help_text="what uses it, e.g. 'ci-churn-model'")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(
        max_length=12, editable=False, help_text="first characters, to tell tokens apart"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="refused after this time; empty: never expires"
    )
    scopes = models.JSONField(
        default=_all_scopes, help_text=f"what the token may do, a list of: {', '.join(ALL_SCOPES)}"
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…) for {self.user}"

    def has_scope(self, scope: str) -> bool:
        return scope in (self.scopes or ())

    @staticmethod
    def generate() -> tuple[str, str]:
        raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
        return raw, hash_token(raw)
