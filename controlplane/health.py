"""Liveness and readiness probes for Kubernetes and for `make demo` to wait on."""

from __future__ import annotations

from django.http import JsonResponse


def healthz(request):
    """The process is up and serving requests; nothing else is checked."""
    return JsonResponse({"status": "ok"})
