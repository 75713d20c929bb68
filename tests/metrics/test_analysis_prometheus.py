"""The analysis engine end to end against a real Prometheus with backfilled per-revision
series: one stable revision and four candidates over the same 15-minute window.

Per 15 s step (the window holds 60 steps):

stable v3      200 requests, 1 error (0.5%); latency {.05: 100, .1: 160, .25: 194, .5: 199,
               1: 200}; scores 20 in each of 10 buckets; 4 pods of 1 core / 2 GiB
v4-good        50 requests, no error series at all; latency {.05: 25, .1: 40, .25: 48,
               .5: 50}; scores 5 per bucket (same shape); 1 pod; 49 of 50 mirrored agree
v4-bad         50 requests, 5 errors (10%); latency {.05: 5, .1: 15, .25: 35, .5: 45,
               1: 50}: p95 750 ms; same scores as stable
v4-drift       like v4-good, but scores [1,1,2,3,4,5,7,8,9,10]: PSI ~0.49; 40 of 50 agree
v4-quiet       3 requests (180 in the window), 1 scored prediction

The same window also holds the series the KServe (Knative queue-proxy, milliseconds,
``revision_name``) and Seldon Core 2 (``model_internal``) defaults read, so each runtime's
default PromQL runs against data shaped like what that runtime exports.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import pytest

from apps.metrics.analysis import Histogram, histogram_quantile
from apps.metrics.analysis.queries import resolve_queries
from apps.metrics.analysis.reader import AnalysisReader
from apps.metrics.analysis.run import analysis_run
from apps.metrics.sources import MetricsConfigError, SourceUnavailable
from apps.metrics.sources.promapi import PrometheusClient
from tests.fixtures.prometheus import OpenMetrics, _labels, _number

pytestmark = pytest.mark.slow

T_END = 1704070800  # 2024-01-01T01:00:00Z
STEP = 15
TIMES = [T_END - 40 * 60 + i * STEP for i in range(40 * 60 // STEP + 1)]
START = datetime.fromtimestamp(T_END - 900, tz=UTC)
END = datetime.fromtimestamp(T_END, tz=UTC)
INF = math.inf
SCORE_BOUNDS = [round(0.1 * i, 1) for i in range(1, 11)]
ENV, SERVICE = "prod", "churn-model"
PRICES = {"cpu_core_hour": 0.031611, "memory_gib_hour": 0.004237}
GIB = 2**30

REVISIONS = {
    "v3": {
        "ok": 199,
        "errors": 1,
        "latency": {0.05: 100, 0.1: 160, 0.25: 194, 0.5: 199, 1.0: 200},
        "scores": [20] * 10,
        "pods": 4,
    },
    "v4-good": {
        "ok": 50,
        "errors": None,
        "latency": {0.05: 25, 0.1: 40, 0.25: 48, 0.5: 50, 1.0: 50},
        "scores": [5] * 10,
        "pods": 1,
        "agree": (49, 1),
    },
    "v4-bad": {
        "ok": 45,
        "errors": 5,
        "latency": {0.05: 5, 0.1: 15, 0.25: 35, 0.5: 45, 1.0: 50},
        "scores": [5] * 10,
        "pods": 1,
    },
    "v4-drift": {
        "ok": 50,
        "errors": None,
        "latency": {0.05: 25, 0.1: 40, 0.25: 48, 0.5: 50, 1.0: 50},
        "scores": [1, 1, 2, 3, 4, 5, 7, 8, 9, 10],
        "pods": 1,
        "agree": (40, 10),
    },
    "v4-quiet": {
        "ok": 3,
        "errors": None,
        "latency": {0.05: 1, 0.1: 2, 0.25: 3, 0.5: 3, 1.0: 3},
        "scores": [0, 0, 0, 0, 1, 0, 0, 0, 0, 0],
        "pods": 1,
    },
}


class _Metrics(OpenMetrics):
    """OpenMetrics with gauges (kube-state-metrics' pod requests and labels)."""

    def gauge(self, family: str, labels: dict, values) -> _Metrics:
        """``values``: one per time in ``TIMES``, or a single number held throughout."""
        if isinstance(values, int | float):
            values = [values] * len(TIMES)
        lines = self._family(family, "gauge")
        lines += [
            f"{family}{_labels(labels)} {_number(v)} {t:.3f}"
            for t, v in zip(TIMES, values, strict=True)
        ]
        return self


def _cumulative(per_bucket):
    out, running = {}, 0
    for bound, count in zip(SCORE_BOUNDS, per_bucket, strict=True):
        running += count
        out[bound] = running
    out[INF] = running
    return out


def analysis_openmetrics() -> str:
    om = _Metrics()
    base = {"environment": ENV, "service": SERVICE}
    for revision, spec in REVISIONS.items():
        labels = {**base, "version": revision}
        codes = {"200": spec["ok"]}
        if spec["errors"] is not None:
            codes["500"] = spec["errors"]
        for code, per_step in codes.items():
            om.counter(
                "slipway_requests",
                {**labels, "code": code},
                [(t, 1000 + per_step * i) for i, t in enumerate(TIMES)],
            )
    for revision, spec in REVISIONS.items():
        buckets = {**spec["latency"], INF: spec["latency"][1.0]}
        om.histogram(
            "slipway_request_duration_seconds",
            {**base, "version": revision},
            TIMES,
            buckets,
            start=10,
        )
    for revision, spec in REVISIONS.items():
        om.histogram(
            "slipway_prediction_score",
            {**base, "version": revision},
            TIMES,
            _cumulative(spec["scores"]),
            start=10,
        )
    for revision, spec in REVISIONS.items():
        for agree, per_step in zip(("true", "false"), spec.get("agree", ()), strict=False):
            om.counter(
                "slipway_shadow_comparisons",
                {**base, "candidate": revision, "stable": "v3", "agree": agree},
                [(t, per_step * i) for i, t in enumerate(TIMES)],
            )
    pods = [
        (revision, f"{SERVICE}-{revision}-{i}")
        for revision, spec in REVISIONS.items()
        for i in range(spec["pods"])
    ]
    for resource, amount in (("cpu", 1), ("memory", 2 * GIB)):
        for _revision, pod in pods:
            om.gauge(
                "kube_pod_container_resource_requests",
                {"namespace": ENV, "pod": pod, "container": "model", "resource": resource},
                amount,
            )
    for revision, pod in pods:
        om.gauge(
            "kube_pod_labels",
            {
                "namespace": ENV,
                "pod": pod,
                "label_app_kubernetes_io_instance": f"{SERVICE}-{ENV}",
                "label_app_kubernetes_io_version": revision,
            },
            1,
        )
    _knative(om)
    _seldon(om)
    return om.text()


KNATIVE_STABLE, KNATIVE_CANDIDATE = "churn-model-predictor-00003", "churn-model-predictor-00004"


def _knative(om: _Metrics) -> None:
    """Queue-proxy series as Knative (<= 1.18) exports them: latencies in milliseconds, a
    request count per response_code_class (a plain name without _total, so declared here
    as a gauge, which increase() reads the same way)."""
    revisions = {
        KNATIVE_STABLE: ({"2xx": 199, "5xx": 1}, {25: 100, 50: 160, 100: 194, 250: 199}, 20),
        KNATIVE_CANDIDATE: ({"2xx": 50}, {25: 25, 50: 40, 100: 48, 250: 50}, 5),
    }
    for revision, (codes, _, _) in revisions.items():
        for code_class, per_step in codes.items():
            om.gauge(
                "revision_app_request_count",
                {"revision_name": revision, "response_code_class": code_class},
                [per_step * i for i in range(len(TIMES))],
            )
    for revision, (codes, latency, _) in revisions.items():
        total = sum(codes.values())
        om.histogram(
            "revision_app_request_latencies",
            {"revision_name": revision},
            TIMES,
            {**latency, 500: total, INF: total},
            start=10,
        )
    for revision, (_, _, per_bucket) in revisions.items():
        om.histogram(
            "slipway_prediction_score",
            {"revision_name": revision},
            TIMES,
            _cumulative([per_bucket] * 10),
            start=10,
        )


SELDON_STABLE, SELDON_CANDIDATE = "churn-model-v3", "churn-model-v4"


def _seldon(om: _Metrics) -> None:
    """The Seldon agent's histogram per answering Model (``model_internal`` =
    ``<Model>_<Seldon's version>``) and status code; a decoy Model whose name starts with
    the candidate's must not be read as the candidate."""
    series = [
        ("churn-model-v3_1", "200", {0.05: 100, 0.1: 160, 0.25: 194, 0.5: 199, 1.0: 200}),
        ("churn-model-v4_2", "200", {0.05: 20, 0.1: 32, 0.25: 39, 0.5: 40, 1.0: 40}),
        ("churn-model-v4_2", "500", {0.05: 10, 0.1: 10, 0.25: 10, 0.5: 10, 1.0: 10}),
        ("churn-model-v40_1", "500", {0.05: 999, 0.1: 999, 0.25: 999, 0.5: 999, 1.0: 999}),
    ]
    for internal, code, buckets in series:
        om.histogram(
            "seldon_model_infer_api_seconds",
            {
                "model": SERVICE,
                "model_internal": internal,
                "code": code,
                "method_type": "rest",
                "server": "mlserver",
                "server_replica": "0",
            },
            TIMES,
            {**buckets, INF: buckets[1.0]},
            start=10,
        )
    for model in (SELDON_STABLE, SELDON_CANDIDATE):
        om.histogram(
            "slipway_prediction_score",
            {**{"environment": ENV, "service": SERVICE}, "model": model},
            TIMES,
            _cumulative([20 if model == SELDON_STABLE else 5] * 10),
            start=10,
        )


@pytest.fixture(scope="module")
def prom(prometheus_session_factory):
    return prometheus_session_factory(openmetrics=analysis_openmetrics())


@pytest.fixture
def client(prom):
    client = PrometheusClient(prom.url, timeout=5)
    yield client
    client.close()


def _run(client, candidate, **kwargs):
    return analysis_run(
        environment=ENV,
        service=SERVICE,
        runtime="custom",
        candidate=candidate,
        stable="v3",
        start=START,
        end=END,
        client=client,
        **kwargs,
    )


def _by_name(analysis):
    return {c.name: c for c in analysis.verdict.checks}


def test_a_clearly_good_candidate_passes_every_check(client, settings):
    settings.METRICS_PRICES = PRICES
    analysis = _run(client, "v4-good")
    checks = _by_name(analysis)
    assert analysis.verdict.verdict == "pass", analysis.verdict.message
    assert {name: c.verdict for name, c in checks.items()} == {
        "latency_p95": "pass",
        "error_rate": "pass",
        "output_psi": "pass",
        "cost_per_1k": "pass",
        "agreement": "pass",
    }
    # p95s computed from the bucket deltas: 0.1 + 0.15 * 7.5/8 s and 0.1 + 0.15 * 30/34 s
    assert checks["latency_p95"].candidate == pytest.approx(240.625)
    assert checks["latency_p95"].stable == pytest.approx(100 + 150 * 30 / 34)
    assert checks["latency_p95"].samples == 3000  # 50 a step for 60 steps, the smaller side
    # no 5xx series for the candidate: 0 errors, not "missing"
    assert checks["error_rate"].candidate == 0.0
    assert checks["error_rate"].stable == pytest.approx(1 / 200)
    assert checks["output_psi"].candidate == pytest.approx(0.0, abs=1e-12)
    assert checks["agreement"].candidate == pytest.approx(0.98)
    # 1 pod for 3,000 requests against 4 pods for 12,000: the same cost per 1,000
    per_pod = (PRICES["cpu_core_hour"] + 2 * PRICES["memory_gib_hour"]) * 0.25
    assert checks["cost_per_1k"].candidate == pytest.approx(1000 * per_pod / 3000)
    assert checks["cost_per_1k"].stable == pytest.approx(1000 * 4 * per_pod / 12000)
    assert analysis.inputs.queries_sent == 6
    stored = json.loads(json.dumps(analysis.as_dict(), allow_nan=False))
    assert stored["verdict"] == "pass"
    assert (stored["candidate"], stored["stable"]) == ("v4-good", "v3")
    assert stored["start"] == START.isoformat()
    assert stored["thresholds"]["latency_p95_ratio_max"] == 1.2
    assert len(stored["checks"]) == 5


def test_a_clearly_bad_candidate_fails_on_errors_and_latency(client):
    analysis = _run(client, "v4-bad")
    assert analysis.verdict.verdict == "fail"
    assert set(analysis.verdict.failed) == {"latency_p95", "error_rate"}
    assert analysis.verdict.checks[0].verdict == "fail"  # failing checks come first
    checks = _by_name(analysis)
    assert checks["latency_p95"].candidate == pytest.approx(750.0)
    assert checks["error_rate"].candidate == pytest.approx(0.1)
    assert checks["output_psi"].verdict == "pass"
    assert "error rate 10.00% vs 0.50% stable" in analysis.verdict.message


def test_fine_latency_but_a_shifted_output_distribution_fails_on_psi(client):
    analysis = _run(client, "v4-drift")
    checks = _by_name(analysis)
    assert checks["latency_p95"].verdict == "pass"
    assert checks["error_rate"].verdict == "pass"
    shares = [n / 50 for n in REVISIONS["v4-drift"]["scores"]]
    expected = sum((a - 0.1) * math.log(a / 0.1) for a in shares)
    assert checks["output_psi"].candidate == pytest.approx(expected)
    assert analysis.verdict.verdict == "fail"
    assert set(analysis.verdict.failed) == {"output_psi", "agreement"}
    assert analysis.verdict.message.startswith("fail: ")


def test_too_little_traffic_is_inconclusive_and_says_how_much_is_missing(client):
    analysis = _run(client, "v4-quiet")
    assert analysis.verdict.verdict == "inconclusive"
    assert set(analysis.verdict.missing) == {"latency_p95", "error_rate", "output_psi"}
    assert "needs 200 requests per side, candidate had 180" in analysis.verdict.message
    assert "needs 100 scored predictions per side, candidate had 60" in analysis.verdict.message


def test_our_p95_matches_prometheus_histogram_quantile_on_the_same_data(client, prom):
    reader = AnalysisReader(
        client, queries=resolve_queries(environment=ENV, runtime="custom"), prices=PRICES
    )
    for revision in ("v4-good", "v4-bad", "v4-drift"):
        inputs = reader.read(
            environment=ENV,
            service=SERVICE,
            candidate=revision,
            stable="v3",
            start=START,
            end=END,
        )
        for side in (inputs.candidate, inputs.stable):
            theirs = prom.query(
                "1000 * histogram_quantile(0.95, sum by (le) (increase("
                f'slipway_request_duration_seconds_bucket{{version="{side.revision}"}}[900s])))',
                at=T_END,
            )
            assert histogram_quantile(0.95, side.latency_ms) == pytest.approx(
                float(theirs[0]["value"][1]), rel=1e-9
            )


def test_an_unknown_revision_reads_as_missing_data_never_as_a_pass(client):
    analysis = _run(client, "v9-never-deployed")
    assert analysis.verdict.verdict == "inconclusive"
    assert analysis.inputs.candidate.requests is None
    assert analysis.inputs.candidate.latency_ms is None
    assert analysis.inputs.candidate.errors is None  # no requests either: not a zero


def test_a_template_prometheus_refuses_is_a_config_error_naming_it(client):
    with pytest.raises(MetricsConfigError, match=r"the service's analysis promql\['requests'\]"):
        _run(client, "v4-good", config={"promql": {"requests": "sum(rate(x[$window]"}})


def test_a_template_that_does_not_aggregate_is_a_config_error(client):
    per_code = 'increase(slipway_requests_total{version="$revision"}[$window])'
    with pytest.raises(MetricsConfigError, match="aggregate with sum"):
        _run(client, "v4-bad", config={"promql": {"requests": per_code}})


def test_prometheus_down_raises_unavailable_so_the_step_pauses(closed_port):
    down = PrometheusClient(f"http://127.0.0.1:{closed_port}", timeout=2)
    with pytest.raises(SourceUnavailable):
        _run(down, "v4-good")


def test_a_histogram_built_from_the_reader_keeps_prometheus_bucket_order(client):
    inputs = AnalysisReader(
        client, queries=resolve_queries(environment=ENV, runtime="custom"), prices=PRICES
    ).read(environment=ENV, service=SERVICE, candidate="v4-good", stable="v3", start=START, end=END)
    assert isinstance(inputs.stable.scores, Histogram)
    assert list(inputs.stable.scores.bounds) == [*SCORE_BOUNDS, INF]
    assert inputs.stable.scores.total == 200 * 60


def test_kserve_defaults_read_knative_revisions_in_milliseconds(client):
    analysis = analysis_run(
        environment=ENV,
        service=SERVICE,
        runtime="kserve-sklearn",
        candidate=KNATIVE_CANDIDATE,
        stable=KNATIVE_STABLE,
        start=START,
        end=END,
        client=client,
    )
    checks = _by_name(analysis)
    assert analysis.verdict.verdict == "pass", analysis.verdict.message
    # bounds already in ms: 50 + 50 * 7.5/8 and 50 + 50 * 30/34, not a thousand times more
    assert checks["latency_p95"].candidate == pytest.approx(96.875)
    assert checks["latency_p95"].stable == pytest.approx(50 + 50 * 30 / 34)
    assert checks["error_rate"].candidate == 0.0
    assert checks["error_rate"].stable == pytest.approx(1 / 200)
    assert checks["latency_p95"].samples == 3000
    assert "cost_per_1k" not in checks  # no pods labelled with these revisions: not measured


def test_seldon_defaults_read_the_answering_model_and_nothing_else(client):
    analysis = analysis_run(
        environment=ENV,
        service=SERVICE,
        runtime="seldon",
        candidate=SELDON_CANDIDATE,
        stable=SELDON_STABLE,
        start=START,
        end=END,
        client=client,
    )
    checks = _by_name(analysis)
    assert analysis.verdict.verdict == "fail"
    assert analysis.verdict.failed == ("error_rate",)
    # 10 errors in 50 a step: the decoy churn-model-v40's 999 errors are not counted
    assert checks["error_rate"].candidate == pytest.approx(0.2)
    assert checks["error_rate"].stable == 0.0
    assert checks["latency_p95"].candidate == pytest.approx(100 + 150 * 5.5 / 7)
    assert checks["output_psi"].verdict == "pass"
    assert analysis.inputs.queries_sent == 5  # no cost query for Seldon


def test_an_agreement_template_without_the_agree_split_is_a_config_error(client):
    flat = 'sum(increase(slipway_shadow_comparisons_total{candidate="$candidate"}[$window]))'
    with pytest.raises(MetricsConfigError, match="'agree' label"):
        _run(client, "v4-good", config={"promql": {"agreement": flat}})


def test_nan_from_prometheus_is_inconclusive_never_a_zero(client):
    # 0/0 is what a rate ratio gives on no traffic; here forced on real series.
    nan_requests = 'sum(increase(slipway_requests_total{version="$revision"}[$window])) * 0 / 0'
    analysis = _run(client, "v4-good", config={"promql": {"requests": nan_requests}})
    assert math.isnan(analysis.inputs.candidate.requests)
    checks = _by_name(analysis)
    assert checks["error_rate"].verdict == "inconclusive"
    assert checks["cost_per_1k"].verdict == "inconclusive"
    assert analysis.verdict.verdict == "inconclusive"
    assert analysis.verdict.missing == ("error_rate",)
