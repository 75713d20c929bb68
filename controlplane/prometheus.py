"""Slipway's own metrics, for Prometheus, at ``/metrics``.

Two kinds of metrics, exposed from a dedicated ``CollectorRegistry`` (never
prometheus_client's global one, so no library's metrics leak in by import):

- **Request counters and latency**, recorded by ``PrometheusMiddleware`` per view name
  (the URL pattern's name, so ``/releases/123`` and ``/releases/456`` are one series),
  method and status.
- **State gauges computed at scrape time from the database**, by the collectors each app
  registers from its ``ops.py`` (apps/core/ops.py): releases by environment and
  state, releases waiting for approval, the deploy queue (approved, not yet deploying) and
  the age of its oldest entry, the age of the last good MLflow registry sync, and each
  metric source's staleness. Being read from the database, they are the same whichever
  process answers the scrape, and need no bookkeeping in the code that changes state.

All names start with ``slipway_controlplane_``: the model servers Slipway deploys export
``slipway_requests_total`` and ``slipway_request_duration_seconds`` (see
apps/metrics/conf.py), often into the same Prometheus, and the two must never mix.

**Several processes (gunicorn).** A counter lives in the memory of the process that
counted it, and a scrape reaches one worker. With ``PROMETHEUS_MULTIPROC_DIR`` set (the
container image's gunicorn config, deploy/gunicorn.conf.py, sets it and empties the
directory at start-up) prometheus_client keeps each worker's counters in files there and
``/metrics`` adds them up across workers, dead ones included, so totals never go back.
Without it (``runserver``, the demo, tests) each process reports its own counts, which is
exact for a single process. The state gauges do not depend on either.

Access: ``/metrics`` wants ``Authorization: Bearer <METRICS_TOKEN>`` (Prometheus:
``authorization: {credentials_file: ...}``, see deploy/compose/prometheus.yml). With no
token configured it answers 401 saying how to configure one, unless ``METRICS_PUBLIC=1``
opens it on purpose: closed unless someone decided otherwise.
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Iterator

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import CollectorRegistry, Counter, Histogram, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder

from apps.core.ops import METRICS_PREFIX, metrics_collectors

logger = logging.getLogger("controlplane.prometheus")

PREFIX = METRICS_PREFIX
MULTIPROCESS_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
if MULTIPROCESS_DIR:
    # prometheus_client writes its per-process files here as soon as a metric exists.
    os.makedirs(MULTIPROCESS_DIR, exist_ok=True)

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_UNRESOLVED = "<unresolved>"  # 404s, and requests a middleware answered before routing
_STATIC = "<static>"

# The registry the request metrics are created in. Only read in single-process mode; in
# multi-process mode the same values come back from the files MultiProcessCollector reads.
REQUEST_REGISTRY = CollectorRegistry(auto_describe=True)
REQUESTS = Counter(
    f"{PREFIX}_http_requests",
    "HTTP requests answered, by view name, method and status code.",
    ["view", "method", "status"],
    registry=REQUEST_REGISTRY,
)
REQUEST_DURATION = Histogram(
    f"{PREFIX}_http_request_duration_seconds",
    "Time from the request reaching Django to the response leaving it, by view and status.",
    ["view", "status"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REQUEST_REGISTRY,
)


class PrometheusMiddleware:
    """Count and time every request. Put it first in MIDDLEWARE so the time includes the
    other middleware, and requests they answer themselves (413, redirects) are counted."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        start = time.perf_counter()
        status = "500"
        try:
            response = self.get_response(request)
            status = str(response.status_code)
            return response
        finally:
            elapsed = time.perf_counter() - start
            view = _view_name(request)
            method = request.method if request.method in _METHODS else "other"
            REQUESTS.labels(view, method, status).inc()
            REQUEST_DURATION.labels(view, status).observe(elapsed)


def _view_name(request) -> str:
    match = getattr(request, "resolver_match", None)
    if match is None:
        # whitenoise answers static files before URL routing.
        static = "/" + (settings.STATIC_URL or "static/").lstrip("/")
        return _STATIC if request.path.startswith(static) else _UNRESOLVED
    # "dashboards:fleet"; an unnamed pattern gives the view's dotted path. Both are a
    # fixed set, so the label cannot grow with user input.
    return match.view_name or _UNRESOLVED


# --- gauges computed at scrape time ------------------------------------------------------


class StateCollector:
    """Runs every collector the apps registered (apps/core/ops.py: releases, registry,
    metric sources), which read Slipway's state from the database on every scrape (a few
    small aggregate queries). A part that fails is reported by
    ``..._state_collect_ok{part}`` = 0 and logged; the other parts are still exposed."""

    def collect(self) -> Iterator[Metric]:
        ok = GaugeMetricFamily(
            f"{PREFIX}_state_collect_ok",
            "1 when this part of the state gauges was read from the database, 0 when not.",
            labels=["part"],
        )
        database_down = False
        for part, reader in metrics_collectors().items():
            if database_down:
                # Each attempt would wait for the connect timeout again; the scrape
                # must answer within Prometheus's scrape timeout.
                ok.add_metric([part], 0)
                continue
            try:
                families = list(reader())
            except Exception as exc:
                logger.exception("Could not read %s for /metrics", part)
                ok.add_metric([part], 0)
                database_down = isinstance(exc, DatabaseError)
                continue
            ok.add_metric([part], 1)
            yield from families
        yield ok


class _RequestMetrics:
    """This process's request metrics (single-process mode)."""

    def collect(self) -> Iterator[Metric]:
        return REQUEST_REGISTRY.collect()


def scrape_registry() -> CollectorRegistry:
    """A registry for one scrape: request metrics (from this process, or summed over all
    gunicorn workers) plus the state gauges. auto_describe stays off so registering does
    not run the database queries a second time."""
    registry = CollectorRegistry(auto_describe=False)
    if MULTIPROCESS_DIR:
        multiprocess.MultiProcessCollector(registry, path=MULTIPROCESS_DIR)
    else:
        registry.register(_RequestMetrics())
    registry.register(StateCollector())
    return registry


def _authorized(request) -> bool:
    token = getattr(settings, "METRICS_TOKEN", "")
    if not token:
        return bool(getattr(settings, "METRICS_PUBLIC", False))
    header = request.headers.get("Authorization", "")
    scheme, _, credentials = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        credentials.strip().encode(), token.encode()
    )


@never_cache
@require_safe
def metrics_view(request):
    """The Prometheus text format (or OpenMetrics when the scraper asks for it)."""
    if not _authorized(request):
        if getattr(settings, "METRICS_TOKEN", ""):
            message = "A bearer token is required.\n"
        else:
            message = (
                "Closed: no METRICS_TOKEN is configured. Set METRICS_TOKEN (or "
                "METRICS_TOKEN_FILE) and give Prometheus the token, or set METRICS_PUBLIC=1 "
                "to open /metrics to anyone who can reach it.\n"
            )
        response = HttpResponse(message, status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encoder(scrape_registry()), content_type=content_type)
