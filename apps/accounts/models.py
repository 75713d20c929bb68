import hashlib
import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q

from apps.accounts.roles import Role

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


# A team slug names an Argo CD AppProject (slipway-<slug>) and appears in URLs and API
# bodies, so it is a DNS-1123 label like service and environment names.
TEAM_SLUG_MAX = 50  # "slipway-" + slug stays within a 63-character label
validate_team_slug = RegexValidator(
    r"\A[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z",
    "Use lowercase letters, digits and '-', starting and ending with a letter or digit "
    "(e.g. risk-ml).",
)


class Team(models.Model):
    """A group of people owning services. Roles can be held for one team (RoleGrant)."""

    slug = models.CharField(max_length=TEAM_SLUG_MAX, unique=True, validators=[validate_team_slug])
    name = models.CharField(max_length=100, blank=True, help_text="display name")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    @property
    def display_name(self) -> str:
        return self.name or self.slug


class RoleGrant(models.Model):
    """``user`` holds ``role`` for ``team``, or organisation-wide when ``team`` is empty.

    Membership of the role's Django group counts as an organisation-wide grant too
    (apps.accounts.roles), so people set up before teams existed keep their roles.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="role_grants"
    )
    role = models.CharField(max_length=32, choices=Role.choices)
    team = models.ForeignKey(
        Team,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="grants",
        help_text="empty: the role is held for every team (organisation-wide)",
    )
    source = models.CharField(
        max_length=8,
        choices=[("admin", "admin"), ("sso", "single sign-on")],
        default="admin",
        editable=False,
        help_text="who made it: single sign-on grants follow the provider's groups at "
        "every sign-in; an admin's stay until an admin removes them",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["user__username", "role", "team__slug"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "role", "team"],
                condition=Q(team__isnull=False),
                name="role_grant_unique_per_team",
            ),
            models.UniqueConstraint(
                fields=["user", "role"],
                condition=Q(team__isnull=True),
                name="role_grant_unique_org_wide",
            ),
            # Admin manages the whole installation; a team-scoped admin would mean nothing.
            models.CheckConstraint(
                condition=~Q(role="admin", team__isnull=False),
                name="role_grant_admin_org_wide",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} {self.role} of {self.team.slug if self.team_id else 'all teams'}"

    def clean(self):
        if self.role == Role.ADMIN and self.team_id is not None:
            raise ValidationError(
                {"team": "Admin is held for the whole organisation: leave empty."}
            )
