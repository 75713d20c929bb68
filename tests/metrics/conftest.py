"""Test data for the metrics tests: a backfilled Prometheus with exactly known answers,
environments and live releases, and small real HTTP servers for failure modes.

The fleet data (``fleet_openmetrics``) covers 40 minutes before ``T_END`` at 15 s steps;
every counter and bucket grows linearly, so ``rate()`` and ``increase()`` over windows
inside it are exact and ``histogram_quantile`` interpolates to the values in
``EXPECTED``:

prod/churn-model   buckets per step {0.05: 40, 0.1: 60, 0.25: 90, 0.5: 98, 1: 100}
                   p50 = 0.05 + 0.05 * (50-40)/20 = 75 ms; p95 = 0.25 + 0.25 * 5/8 =
                   406.25 ms; p99 = 0.5 + 0.5 * 1/2 = 750 ms; 285 ok + 15 errors per
                   step: 20 req/s, error rate 0.05; scores [5,5,10,10,20,20,10,10,5,5]
                   per step against a uniform baseline: PSI = 0.4 ln 2.
staging/churn      {0.05: 90, 0.1: 100}: p50 = 0.05 * 50/90, p95 = 75 ms, p99 = 95 ms;
                   297 ok + 3 errors: 20 req/s, 0.01; scores with an empty first bucket.
prod/fraud-model   kserve runtime, latency only under kserve_request_duration_seconds
                   {0.01: 40, 0.025: 80, 0.05: 100}: 13.75 / 43.75 / 48.75 ms; no error
                   series at all: error rate 0; 4 req/s; baseline bounds that do not line
                   up with the live ones (no PSI).
prod/quiet-model   counters that never move: 0 req/s, and no latency or error rate (0/0).
prod/idle-model    nothing exported.
"""

from __future__ import annotations

import math
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from apps.releases.models import Environment
from tests import factories
from tests.fixtures.prometheus import OpenMetrics

T_END = 1704070800  # 2024-01-01T01:00:00Z
STEP = 15
TIMES = [T_END - 40 * 60 + i * STEP for i in range(40 * 60 // STEP + 1)]
AT = datetime.fromtimestamp(T_END, tz=UTC)
INF = math.inf
SCORE_BOUNDS = [round(0.1 * i, 1) for i in range(1, 11)]
UNIFORM_BASELINE = {"le": SCORE_BOUNDS, "counts": [100] * 10}
COARSE_BASELINE = {"le": [0.25, 0.5, 0.75, 1.0], "counts": [25, 25, 25, 25]}

KSERVE_LATENCY = (
    "1000 * histogram_quantile($quantile, sum by (service, le) ("
    'rate(kserve_request_duration_seconds_bucket{environment="$environment"}[$window])))'
)

EXPECTED = {
    ("churn-model", "prod"): {
        "latency_p50_ms": 75.0,
        "latency_p95_ms": 406.25,
        "latency_p99_ms": 750.0,
        "error_rate": 0.05,
        "request_rate": 20.0,
        "drift_psi": 0.4 * math.log(2),
    },
    ("churn-model", "staging"): {
        "latency_p50_ms": 1000 * 0.05 * 50 / 90,
        "latency_p95_ms": 75.0,
        "latency_p99_ms": 95.0,
        "error_rate": 0.01,
        "request_rate": 20.0,
        # share 0 in the first bucket stands in as epsilon = 1e-4; the last is 0.2 vs 0.1
        "drift_psi": (1e-4 - 0.1) * math.log(1e-4 / 0.1) + 0.1 * math.log(2),
    },
    ("fraud-model", "prod"): {
        "latency_p50_ms": 13.75,
        "latency_p95_ms": 43.75,
        "latency_p99_ms": 48.75,
        "error_rate": 0.0,
        "request_rate": 4.0,
    },
    ("quiet-model", "prod"): {"request_rate": 0.0},
}


def _cumulative(per_bucket: list[float], bounds: list[float]) -> dict[float, float]:
    out, running = {}, 0.0
    for bound, count in zip(bounds, per_bucket, strict=True):
        running += count
        out[bound] = running
    out[INF] = running
    return out


def fleet_openmetrics() -> str:
    om = OpenMetrics()
    requests = {
        ("churn-model", "prod", "200"): 285,
        ("churn-model", "prod", "500"): 15,
        ("churn-model", "staging", "200"): 297,
        ("churn-model", "staging", "500"): 3,
        ("fraud-model", "prod", "200"): 60,
        ("quiet-model", "prod", "200"): 0,
    }
    for (service, env, code), per_step in requests.items():
        labels = {"service": service, "environment": env, "code": code}
        om.counter(
            "slipway_requests",
            labels,
            [(t, 1000 + per_step * i) for i, t in enumerate(TIMES)],
        )
    latency = {
        ("churn-model", "prod"): {0.05: 40, 0.1: 60, 0.25: 90, 0.5: 98, 1.0: 100, INF: 100},
        ("churn-model", "staging"): {0.05: 90, 0.1: 100, 0.25: 100, 0.5: 100, 1.0: 100, INF: 100},
        ("quiet-model", "prod"): {0.05: 0, 0.1: 0, 0.25: 0, 0.5: 0, 1.0: 0, INF: 0},
    }
    for (service, env), buckets in latency.items():
        om.histogram(
            "slipway_request_duration_seconds",
            {"service": service, "environment": env},
            TIMES,
            buckets,
            start=10,
        )
    om.histogram(
        "kserve_request_duration_seconds",
        {"service": "fraud-model", "environment": "prod"},
        TIMES,
        {0.01: 40, 0.025: 80, 0.05: 100, INF: 100},
        start=10,
    )
    scores = {
        ("churn-model", "prod"): [5, 5, 10, 10, 20, 20, 10, 10, 5, 5],
        ("churn-model", "staging"): [0, 10, 10, 10, 10, 10, 10, 10, 10, 20],
        ("fraud-model", "prod"): [10] * 10,
    }
    for (service, env), per_bucket in scores.items():
        om.histogram(
            "slipway_prediction_score",
            {"service": service, "environment": env},
            TIMES,
            _cumulative(per_bucket, SCORE_BOUNDS),
            start=10,
        )
    return om.text()


@pytest.fixture(scope="session")
def fleet_prometheus(prometheus_session_factory):
    """A Prometheus holding the fleet data above (shared by the whole session)."""
    return prometheus_session_factory(openmetrics=fleet_openmetrics())


@pytest.fixture
def use_prometheus(settings, fleet_prometheus):
    """Point the metrics settings at the fleet Prometheus; cost off unless a test adds it."""
    settings.METRICS_BACKEND = "prometheus"
    settings.PROMETHEUS_URL = fleet_prometheus.url
    settings.PROMETHEUS_TIMEOUT_SECONDS = 5
    settings.METRICS_COST_BACKEND = ""
    settings.METRICS_PROMQL_OVERRIDES = {"*/kserve-sklearn": {"latency": KSERVE_LATENCY}}
    return fleet_prometheus


# --- database ---------------------------------------------------------------------------


@pytest.fixture
def envs(db):
    """staging and prod, both reached directly (no promotion, no approvals), so tests can
    take releases live in either with factories.live_release."""
    staging = Environment.objects.create(name="staging", order=1)
    prod = Environment.objects.create(name="prod", order=2)
    return {"staging": staging, "prod": prod}


@pytest.fixture
def make_live(envs, alice, django_capture_on_commit_callbacks):
    """make_live("churn-model", "prod", version=1, tags={...}, baseline=...) -> live release."""

    def make(
        name: str,
        env: str,
        version: int = 1,
        *,
        tags: dict | None = None,
        baseline: dict | None = None,
        **service_fields,
    ):
        service = factories.make_service(name, **service_fields)
        mv = factories.make_model_version(service.registered_model, version)
        if tags is not None or baseline is not None:
            mv.tags = tags or {}
            mv.score_baseline = baseline
            mv.save(update_fields=["tags", "score_baseline"])
        return factories.live_release(service, envs[env], version, requester=alice)

    return make


# The metrics tests import it from here; the one definition is in tests.factories.
backdate = factories.backdate_live


# --- failure modes ----------------------------------------------------------------------


@pytest.fixture
def garbage_server():
    """A real HTTP server answering every request with 200 and an HTML page (a proxy's
    login page where Prometheus should be)."""
    body = b"<html><body>Please sign in</body></html>"

    class Handler(BaseHTTPRequestHandler):
        def _answer(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def closed_port():
    """A port nothing listens on (Prometheus down)."""
    from tests.fixtures.network import free_port

    return free_port()
