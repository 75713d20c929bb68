"""Production settings (controlplane.settings, read from the environment) plus the
wiring the deploy report asks the lead to add, for the tests that run a real gunicorn.
Once controlplane/settings.py and urls.py carry the snippets, this adds nothing."""

from controlplane.settings import *  # noqa: F403
from controlplane.settings import MIDDLEWARE

_METRICS = "controlplane.prometheus.PrometheusMiddleware"
_CSP = "controlplane.security.ContentSecurityPolicyMiddleware"
if _METRICS not in MIDDLEWARE:
    MIDDLEWARE = [_METRICS, *MIDDLEWARE]
if _CSP not in MIDDLEWARE:
    MIDDLEWARE = [*MIDDLEWARE]
    MIDDLEWARE.insert(MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1, _CSP)
ROOT_URLCONF = "tests.deploy.urls"
