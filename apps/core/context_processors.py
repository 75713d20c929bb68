from django.conf import settings


def deployment(request):
    """Tell every page whether the cluster and metrics are the demo simulator."""
    return {"demo_mode": settings.DEMO_MODE}
