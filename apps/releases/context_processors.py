from apps.releases import permissions
from apps.releases.selectors import inbox_count_for


def navigation(request):
    """What the navigation bar needs: the reviewer's inbox count and the audit link."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "inbox_count": inbox_count_for(user) if permissions.can_review(user) else 0,
        "can_read_audit": permissions.can_read_audit(user),
    }
