"""A small URLconf for the /readyz and /metrics tests: the two views as the project wires
them, /healthz, and two named sample views to count requests against."""

from django.http import HttpResponse
from django.urls import path

from controlplane import health, prometheus, readiness


def sample(request, pk):
    return HttpResponse("sample")


def broken(request):
    raise RuntimeError("a view that fails, for the 500 count")


urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", readiness.readyz, name="readyz"),
    path("metrics", prometheus.metrics_view, name="metrics"),
    path("sample/<int:pk>", sample, name="deploy-sample"),
    path("broken", broken, name="deploy-broken"),
]


# The project's error pages extend base.html, which links to views this URLconf lacks.
def not_found(request, exception):
    return HttpResponse("not found", status=404)


def server_error(request):
    return HttpResponse("server error", status=500)


handler404 = not_found
handler500 = server_error
