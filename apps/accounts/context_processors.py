from apps.accounts.roles import Role, user_roles


def roles(request):
    """Expose the user's roles to templates as ``roles`` and the Role names as ``Role``."""
    user = getattr(request, "user", None)
    return {"roles": user_roles(user) if user is not None else frozenset(), "Role": Role}
