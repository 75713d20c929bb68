"""End to end with a live scrape: a model server's exporter (prometheus_client) serving
/metrics, a real Prometheus scraping it every second, and the poll reading Prometheus."""

from __future__ import annotations

import time

import pytest
from django.utils import timezone
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

from apps.metrics.models import MetricSample
from apps.metrics.services import metrics_poll
from tests.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


class ModelServerCollector:
    """What a model server would export, as a function of time so that every scrape is
    consistent: every 100 ms, 20 requests: 18 in 30 ms, 1 in 300 ms and 1 failing in
    300 ms (a 500). So p95 = 0.1 + 0.4 * (19 - 18) / 2 = 300 ms and the error rate is 5 %."""

    def __init__(self, service: str, environment: str):
        self.labels = {"service": service, "environment": environment}
        self.started = time.monotonic()

    def collect(self):
        batches = int((time.monotonic() - self.started) * 10)
        names, values = list(self.labels), list(self.labels.values())
        histogram = HistogramMetricFamily(
            "slipway_request_duration_seconds", "request latency", labels=names
        )
        histogram.add_metric(
            values,
            buckets=[
                ("0.05", 18 * batches),
                ("0.1", 18 * batches),
                ("0.5", 20 * batches),
                ("1.0", 20 * batches),
                ("+Inf", 20 * batches),
            ],
            sum_value=batches * (18 * 0.03 + 2 * 0.3),
        )
        yield histogram
        requests = CounterMetricFamily(
            "slipway_requests", "requests by status", labels=[*names, "code"]
        )
        requests.add_metric([*values, "200"], 19 * batches)
        requests.add_metric([*values, "500"], batches)
        yield requests


@pytest.fixture
def exporter():
    registry = CollectorRegistry()
    registry.register(ModelServerCollector("churn-model", "prod"))
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        yield f"127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_poll_reads_what_prometheus_scraped_from_a_live_exporter(
    exporter, prometheus_factory, make_live, settings
):
    prometheus = prometheus_factory(scrape_targets=[exporter], scrape_interval="1s")
    settings.METRICS_BACKEND = "prometheus"
    settings.PROMETHEUS_URL = prometheus.url
    settings.METRICS_COST_BACKEND = ""
    settings.METRICS_REQUEST_WINDOW = "10s"
    release = make_live("churn-model", "prod")

    # Wait until scrapes cover more than the 10 s window: over a window the series only
    # partly covers, rate() extrapolates no further than half a scrape interval past its
    # first sample, and reads low.
    def scraped_twelve_times() -> bool:
        up = prometheus.query('count_over_time(up{job="exporter"}[30s])')
        return bool(up) and float(up[0]["value"][1]) >= 12

    wait_until(
        scraped_twelve_times,
        timeout=30,
        interval=0.5,
        message=lambda: f"Prometheus to scrape the exporter:\n{prometheus.log_tail()}",
    )

    result = metrics_poll(now=timezone.now())
    assert [run.source for run in result.sources if run.ok] == ["prometheus", "drift"]
    values = dict(MetricSample.objects.filter(release=release).values_list("metric", "value"))
    assert values["latency_p95_ms"] == pytest.approx(300.0, rel=0.02)
    assert values["latency_p50_ms"] == pytest.approx(1000 * 0.05 * 10 / 18, rel=0.02)
    assert values["error_rate"] == pytest.approx(0.05, rel=0.02)
    assert values["request_rate"] == pytest.approx(200.0, rel=0.15)  # 20 per 100 ms
