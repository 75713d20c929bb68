"""The roles of Slipway. A role is a Django group with one of these names."""

from __future__ import annotations

from django.db import models


class Role(models.TextChoices):
    ML_ENGINEER = "ml-engineer", "ML engineer"
    PRODUCT_REVIEWER = "product-reviewer", "Product reviewer"
    COMPLIANCE_REVIEWER = "compliance-reviewer", "Compliance reviewer"
    ONCALL = "oncall", "On-call"
    ADMIN = "admin", "Admin"


REVIEWER_ROLES = frozenset({Role.PRODUCT_REVIEWER, Role.COMPLIANCE_REVIEWER})
ALL_ROLES = frozenset(Role)


def user_roles(user) -> frozenset[str]:
    """The user's roles, cached on the user object for the request."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return frozenset()
    cached = getattr(user, "_slipway_roles", None)
    if cached is None:
        names = set(user.groups.filter(name__in=ALL_ROLES).values_list("name", flat=True))
        if user.is_superuser:
            names.add(Role.ADMIN)
        cached = frozenset(names)
        user._slipway_roles = cached
    return cached


def has_role(user, *roles: str) -> bool:
    return bool(user_roles(user) & set(roles))
