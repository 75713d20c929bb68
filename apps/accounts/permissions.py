"""API token scopes, enforced on every API view (a default permission class).

A request authenticated by an API token needs the scope its action asks for: ``read``
for safe methods, otherwise what the view names in ``token_scopes`` for its action
(``{"promote": "promote"}``), else ``release:write``. Session sign-ins (people in the
browser) are not scoped: their roles decide, as before.
"""

from __future__ import annotations

from rest_framework import permissions

from apps.accounts.models import ApiToken, TokenScope


def required_scope(request, view) -> str:
    if request.method in permissions.SAFE_METHODS:
        return TokenScope.READ
    action = getattr(view, "action", None)
    return getattr(view, "token_scopes", {}).get(action, TokenScope.RELEASE_WRITE)


class TokenScopePermission(permissions.BasePermission):
    def has_permission(self, request, view):
        token = request.auth
        if not isinstance(token, ApiToken):
            return True
        scope = required_scope(request, view)
        if token.has_scope(scope):
            return True
        self.message = (
            f"This API token lacks the '{scope}' scope (it has: "
            f"{', '.join(token.scopes) or 'none'}); create a token with --scope {scope}."
        )
        return False
