"""The cost source against the Kubernetes API double (the official client over HTTP), and
against an OpenCost-shaped HTTP server."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from apps.metrics.models import MetricSample
from apps.metrics.services import metrics_poll
from apps.metrics.sources import SourceUnavailable, Target
from apps.metrics.sources.cost import KubernetesCostSource, OpenCostSource

AT = datetime(2024, 1, 1, 1, tzinfo=UTC)
PRICES = {"cpu_core_hour": 0.04, "memory_gib_hour": 0.005, "gpu_hour": 2.0}
CHURN_PROD = Target("churn-model", "prod", "custom")
RANKER_PROD = Target("ranker", "prod", "kserve-triton")
CHURN_STAGING = Target("churn-model", "staging", "custom")
GHOST = Target("ghost", "prod", "custom")


def _labels(instance: str) -> dict[str, str]:
    # What apps.gitops.render.common.labels() puts on every pod.
    return {
        "app.kubernetes.io/instance": instance,
        "app.kubernetes.io/managed-by": "slipway",
        "app.kubernetes.io/part-of": "slipway",
    }


@pytest.fixture
def cluster(kube_api):
    # churn-model in prod: two running pods of 500m / 1Gi.
    for name in ("churn-1", "churn-2"):
        kube_api.add_pod(
            "prod",
            name,
            labels=_labels("churn-model-prod"),
            requests={"cpu": "500m", "memory": "1Gi"},
        )
    # A finished pod and an unscheduled one cost nothing.
    kube_api.add_pod(
        "prod",
        "churn-old",
        labels=_labels("churn-model-prod"),
        requests={"cpu": "4"},
        phase="Succeeded",
    )
    kube_api.add_pod(
        "prod",
        "churn-waiting",
        labels=_labels("churn-model-prod"),
        requests={"cpu": "4"},
        phase="Pending",
        node_name="",
    )
    # ranker: one GPU pod with two containers.
    kube_api.add_pod(
        "prod",
        "ranker-1",
        labels=_labels("ranker-prod"),
        requests={"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": "1"},
        containers=2,
    )
    # Not Slipway's: same instance label, not managed by Slipway.
    kube_api.add_pod(
        "prod",
        "intruder",
        labels={"app.kubernetes.io/instance": "churn-model-prod"},
        requests={"cpu": "64"},
    )
    kube_api.add_pod(
        "staging",
        "churn-s",
        labels=_labels("churn-model-staging"),
        requests={"cpu": "250m", "memory": "512Mi"},
    )
    return kube_api


def _values(readings):
    return {(r.service, r.environment, r.metric): r.value for r in readings}


def test_cost_from_pod_requests_priced_from_the_table(cluster):
    source = KubernetesCostSource(cluster.api_client(), prices=PRICES, timeout=5)
    values = _values(source.poll([CHURN_PROD, RANKER_PROD, CHURN_STAGING, GHOST], at=AT))
    churn = 2 * (0.5 * 0.04 + 1 * 0.005)
    ranker = 2 * (2 * 0.04 + 8 * 0.005 + 1 * 2.0)
    staging = 0.25 * 0.04 + 0.5 * 0.005
    assert values[("churn-model", "prod", "cost_per_hour")] == pytest.approx(churn, rel=1e-12)
    assert values[("churn-model", "prod", "cost_per_day")] == pytest.approx(24 * churn, rel=1e-12)
    assert values[("ranker", "prod", "cost_per_hour")] == pytest.approx(ranker, rel=1e-12)
    assert values[("churn-model", "staging", "cost_per_hour")] == pytest.approx(staging)
    # No pods, no reading: not a made-up zero.
    assert not any(key[0] == "ghost" for key in values)
    source.close()


def test_one_pod_list_per_namespace_with_slipways_label_selector(cluster):
    source = KubernetesCostSource(cluster.api_client(), prices=PRICES, timeout=5)
    many = [CHURN_PROD, CHURN_STAGING] + [Target(f"s{i}", "prod", "custom") for i in range(300)]
    source.poll(many, at=AT)
    assert source.requests_sent == 2
    lists = [r for r in cluster.requests if r.url.path.endswith("/pods")]
    assert sorted(r.url.path for r in lists) == [
        "/api/v1/namespaces/prod/pods",
        "/api/v1/namespaces/staging/pods",
    ]
    assert {r.params.get("labelSelector") for r in lists} == {
        "app.kubernetes.io/managed-by=slipway"
    }
    source.close()


def test_the_cluster_unreachable_is_unavailable(kube_api):
    api_client = kube_api.api_client()
    kube_api.stop()
    source = KubernetesCostSource(api_client, prices=PRICES, timeout=2)
    with pytest.raises(SourceUnavailable, match="Cannot reach the Kubernetes API"):
        source.poll([CHURN_PROD], at=AT)
    source.close()


@pytest.mark.django_db
def test_the_poll_derives_cost_per_1k_predictions(make_live, settings, cluster):
    settings.METRICS_BACKEND = "demo"
    release = make_live("churn-model", "prod")
    metrics_poll(now=AT)
    stored = dict(MetricSample.objects.filter(release=release).values_list("metric", "value"))
    expected = stored["cost_per_hour"] / (stored["request_rate"] * 3600 / 1000)
    assert stored["cost_per_1k_predictions"] == pytest.approx(expected, rel=1e-12)


@pytest.mark.django_db
def test_the_poll_uses_the_cluster_for_cost(make_live, settings, cluster):
    settings.METRICS_BACKEND = "prometheus"
    settings.PROMETHEUS_URL = "http://127.0.0.1:9"  # down: only cost reads anything
    settings.METRICS_COST_BACKEND = "kubernetes"
    settings.KUBE_API_URL = cluster.url
    settings.KUBE_TOKEN = "t"
    settings.METRICS_PRICES = {"cpu_core_hour": 0.04}  # the rest from the defaults
    release = make_live("churn-model", "prod")
    result = metrics_poll(now=AT)
    # drift had nothing to ask (no version has a score baseline), so it did not fail
    assert {run.source: (run.ok, run.requests) for run in result.sources} == {
        "prometheus": (False, 1),
        "drift": (True, 0),
        "cost": (True, 1),
    }
    stored = dict(MetricSample.objects.filter(release=release).values_list("metric", "value"))
    assert stored["cost_per_hour"] == pytest.approx(2 * (0.5 * 0.04 + 1 * 0.004237))
    assert "cost_per_1k_predictions" not in stored  # no request rate this cycle


@pytest.fixture
def opencost():
    body = json.dumps(
        {
            "code": 200,
            "data": [
                {
                    "churn-model-prod": {
                        "name": "churn-model-prod",
                        "totalCost": 0.5,
                        "minutes": 30,
                    },
                    "__unallocated__": {"name": "__unallocated__", "totalCost": 9, "minutes": 60},
                }
            ],
        }
    ).encode()
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    server.seen = seen
    server.url = f"http://127.0.0.1:{server.server_port}"
    yield server
    server.shutdown()
    server.server_close()


def test_opencost_allocation_by_instance_label(opencost):
    source = OpenCostSource(opencost.url, timeout=5)
    values = _values(source.poll([CHURN_PROD, GHOST], at=AT))
    assert values == {
        ("churn-model", "prod", "cost_per_hour"): pytest.approx(1.0),
        ("churn-model", "prod", "cost_per_day"): pytest.approx(24.0),
    }
    (path,) = opencost.seen
    assert path.startswith("/allocation?")
    assert "aggregate=label%3Aapp_kubernetes_io_instance" in path and "accumulate=true" in path
    source.close()
