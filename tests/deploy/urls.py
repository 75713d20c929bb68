"""URLconfs for the deploy tests.

``urlpatterns`` is the project's own URLconf plus /readyz and /metrics wherever
controlplane/urls.py does not route them yet (once it does, this adds nothing), so the
tests keep passing before and after the lead wires them.
"""

from django.urls import path

from controlplane import prometheus, readiness
from controlplane import urls as project

_named = {getattr(pattern, "name", None) for pattern in project.urlpatterns}
urlpatterns = [
    *([] if "readyz" in _named else [path("readyz", readiness.readyz, name="readyz")]),
    *([] if "metrics" in _named else [path("metrics", prometheus.metrics_view, name="metrics")]),
    *project.urlpatterns,
]
