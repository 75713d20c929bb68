"""Analysis PromQL: defaults per runtime, the override layers, and the reader's guards."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from apps.core.errors import DomainError
from apps.metrics.analysis.queries import FAMILIES, resolve_queries
from apps.metrics.analysis.reader import AnalysisReader
from apps.metrics.analysis.run import analysis_run
from apps.metrics.analysis.thresholds import ThresholdError
from apps.metrics.sources import MetricsConfigError
from apps.metrics.sources.promapi import PrometheusClient

VALUES = {
    "environment": "prod",
    "service": "churn-model",
    "instance": "churn-model-prod",
    "revision": "v4",
    "candidate": "v4",
    "stable": "v3",
    "window": "900s",
    "window_hours": "0.25",
    "cpu_core_hour": "0.03",
    "memory_gib_hour": "0.004",
}


def rendered(queries, family):
    return queries.get(family).render(**VALUES)


@pytest.mark.parametrize(
    ("runtime", "label", "unit"),
    [
        ("custom", 'version="v4"', "s"),
        ("bentoml", 'version="v4"', "s"),
        ("kserve-sklearn", 'revision_name="v4"', "ms"),
        ("kserve-triton", 'revision_name="v4"', "ms"),
        ("seldon", 'model_internal=~"v4_[0-9]+"', "s"),
    ],
)
def test_each_runtime_selects_the_revision_by_its_own_label(runtime, label, unit):
    queries = resolve_queries(environment="prod", runtime=runtime)
    assert queries.latency_unit == unit
    for family in ("latency_buckets", "requests", "errors"):
        assert label in rendered(queries, family)
    assert "by (le)" in rendered(queries, "latency_buckets")
    assert 'candidate="v4", stable="v3"' in rendered(queries, "agreement")


def test_the_real_metric_names_per_runtime():
    kserve = resolve_queries(environment="prod", runtime="kserve-onnx")
    assert "revision_app_request_latencies_bucket" in rendered(kserve, "latency_buckets")
    assert 'response_code_class="5xx"' in rendered(kserve, "errors")
    seldon = resolve_queries(environment="prod", runtime="seldon")
    assert "seldon_model_infer_api_seconds_bucket" in rendered(seldon, "latency_buckets")
    assert seldon.get("cost") is None  # shared inference servers: no per-model cost
    custom = resolve_queries(environment="prod", runtime="custom")
    assert "slipway_request_duration_seconds_bucket" in rendered(custom, "latency_buckets")
    assert 'label_app_kubernetes_io_version="v4"' in rendered(custom, "cost")


def test_override_layers_most_specific_wins_family_by_family(settings):
    settings.METRICS_ANALYSIS_PROMQL = {"requests": 'sum(base{r="$revision"})'}
    settings.METRICS_ANALYSIS_PROMQL_OVERRIDES = {
        "prod/*": {"errors": "sum(env_errors)", "requests": "sum(env_requests)"},
        "*/custom": {"errors": "sum(runtime_errors)"},
        "prod/custom": {"cost": "", "latency_unit": "ms"},
        "staging/*": {"requests": "sum(staging)"},
    }
    queries = resolve_queries(
        environment="prod", runtime="custom", overrides={"score_buckets": "sum by (le) (s)"}
    )
    assert rendered(queries, "requests") == "sum(env_requests)"
    assert (
        queries.get("requests").origin == "METRICS_ANALYSIS_PROMQL_OVERRIDES['prod/*']['requests']"
    )
    assert rendered(queries, "errors") == "sum(runtime_errors)"
    assert queries.get("cost") is None
    assert queries.latency_unit == "ms"
    assert rendered(queries, "score_buckets") == "sum by (le) (s)"
    assert "slipway_request_duration_seconds_bucket" in rendered(queries, "latency_buckets")
    other = resolve_queries(environment="staging", runtime="seldon")
    assert rendered(other, "requests") == "sum(staging)"
    assert rendered(other, "errors").startswith("sum(increase(seldon_model_infer_api_seconds")


@pytest.mark.parametrize(
    ("setting", "value", "words"),
    [
        ("METRICS_ANALYSIS_PROMQL", {"latency": "x"}, "names the analysis query family 'latency'"),
        ("METRICS_ANALYSIS_PROMQL", {"requests": 5}, "must be a PromQL string"),
        ("METRICS_ANALYSIS_PROMQL", {"latency_unit": "us"}, "must be one of s, ms"),
        ("METRICS_ANALYSIS_PROMQL", "sum(x)", "must map an analysis query family"),
        ("METRICS_ANALYSIS_PROMQL_OVERRIDES", {"prod": {}}, "is not '<environment>/<runtime>'"),
        ("METRICS_ANALYSIS_PROMQL_OVERRIDES", ["prod/*"], "must map '<environment>/<runtime>'"),
    ],
)
def test_bad_settings_name_what_to_fix(settings, setting, value, words):
    setattr(settings, setting, value)
    with pytest.raises(MetricsConfigError, match=words):
        resolve_queries(environment="prod", runtime="custom")


def test_an_unknown_placeholder_names_the_template():
    queries = resolve_queries(
        environment="prod", runtime="custom", overrides={"requests": 'sum(x{v="$version"})'}
    )
    with pytest.raises(MetricsConfigError, match=r"analysis promql\['requests'\] uses \$version"):
        rendered(queries, "requests")


def test_every_default_renders_with_the_documented_placeholders():
    for runtime in ("custom", "kserve-sklearn", "seldon", "streaming"):
        queries = resolve_queries(environment="prod", runtime=runtime)
        for family in FAMILIES:
            if queries.get(family) is not None:
                assert "$" not in rendered(queries, family)


END = datetime(2024, 1, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("candidate", "stable", "start", "words"),
    [
        ('v4"} or vector(1', "v3", END - timedelta(minutes=15), "not a label value"),
        ("v4", "", END - timedelta(minutes=15), "not a label value"),
        ("v4", "v4", END - timedelta(minutes=15), "the same revision"),
        ("v4", "v3", END - timedelta(seconds=30), "at least 60 s"),
        ("v4", "v3", END - timedelta(seconds=90.5), "whole seconds"),
        ("v4", "v3", datetime(2024, 1, 1, 0, 45), "timezone-aware"),
    ],
)
def test_the_reader_refuses_bad_input_before_asking_prometheus(candidate, stable, start, words):
    client = PrometheusClient("http://127.0.0.1:9", timeout=1)
    reader = AnalysisReader(
        client, queries=resolve_queries(environment="prod", runtime="custom"), prices={}
    )
    with pytest.raises(DomainError, match=words):
        reader.read(
            environment="prod",
            service="churn-model",
            candidate=candidate,
            stable=stable,
            start=start,
            end=END,
        )
    assert client.requests_sent == 0


@pytest.mark.parametrize(
    ("config", "error", "words"),
    [
        ({"threshold": {}}, MetricsConfigError, "unknown keys \\['threshold'\\]"),
        ({"thresholds": {"psi_max": "high"}}, ThresholdError, "'psi_max' must be a number"),
        ({"promql": {"latency": "x"}}, MetricsConfigError, "the service's analysis promql"),
    ],
)
def test_a_bad_service_config_is_refused_before_prometheus_is_asked(config, error, words):
    client = PrometheusClient("http://127.0.0.1:9", timeout=1)
    with pytest.raises(error, match=words):
        analysis_run(
            environment="prod",
            service="churn-model",
            runtime="custom",
            candidate="v4",
            stable="v3",
            start=END - timedelta(minutes=15),
            end=END,
            config=config,
            client=client,
        )
    assert client.requests_sent == 0
