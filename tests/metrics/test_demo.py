"""The demo simulator: deterministic readings per live release, a tagged version that
regresses, cost from the release's own configuration."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from apps.metrics.sources import Target
from apps.metrics.sources.demo import DemoSource

AT = datetime(2024, 5, 1, 12, tzinfo=UTC)
CONFIG = {"replicas": {"min": 2, "max": 6}, "resources": {"cpu": "500m", "memory": "1Gi"}}
REGRESSION = {"demo.latency_multiplier": "2.5"}
PRICES = {"cpu_core_hour": 0.031611, "memory_gib_hour": 0.004237, "gpu_hour": 0.95}


def _values(readings):
    return {r.metric: r.value for r in readings}


def test_same_target_and_slot_give_the_same_numbers():
    source = DemoSource(poll_seconds=30, prices=PRICES)
    target = Target("churn-model", "prod", "custom", config=CONFIG)
    assert _values(source.poll([target], at=AT)) == _values(
        source.poll([target], at=AT + timedelta(seconds=5))
    )
    assert _values(source.poll([target], at=AT)) != _values(
        source.poll([target], at=AT + timedelta(seconds=30))
    )


def test_every_metric_is_there_and_plausible():
    values = _values(
        DemoSource(prices=PRICES).poll(
            [Target("churn-model", "prod", "custom", config=CONFIG)], at=AT
        )
    )
    assert set(values) == {
        "latency_p50_ms",
        "latency_p95_ms",
        "latency_p99_ms",
        "error_rate",
        "request_rate",
        "drift_psi",
        "cost_per_hour",
        "cost_per_day",
    }
    assert values["latency_p50_ms"] < values["latency_p95_ms"] < values["latency_p99_ms"]
    assert 100 < values["latency_p95_ms"] < 170
    assert 0.001 < values["error_rate"] < 0.005
    assert values["drift_psi"] < 0.1
    hourly = 2 * (0.5 * 0.031611 + 1 * 0.004237)
    assert values["cost_per_hour"] == pytest.approx(hourly)
    assert values["cost_per_day"] == pytest.approx(24 * hourly)


@pytest.mark.parametrize("slo", [(250.0, 0.02), (120.0, 0.01), (1000.0, 0.001)])
@pytest.mark.parametrize("service", ["churn-model", "fraud-model", "x"])
def test_healthy_versions_meet_their_slos_and_the_regression_breaks_them(slo, service):
    source = DemoSource(prices=PRICES)
    thresholds = {"p95_latency_ms": slo[0], "error_rate": slo[1]}
    for minute in range(0, 24 * 60, 17):
        at = AT + timedelta(minutes=minute)
        good = _values(source.poll([Target(service, "prod", "custom", slo=thresholds)], at=at))
        bad = _values(
            source.poll(
                [Target(service, "prod", "custom", slo=thresholds, model_tags=REGRESSION)],
                at=at,
            )
        )
        assert good["latency_p95_ms"] < 0.7 * slo[0] < 1.1 * slo[0] < bad["latency_p95_ms"]
        assert good["error_rate"] < 0.5 * slo[1] < 1.2 * slo[1] < bad["error_rate"]


def test_without_slos_the_regression_still_shows():
    source = DemoSource(prices=PRICES)
    good = _values(source.poll([Target("churn-model", "prod", "custom")], at=AT))
    bad = _values(
        source.poll([Target("churn-model", "prod", "custom", model_tags=REGRESSION)], at=AT)
    )
    assert bad["latency_p95_ms"] > 2 * good["latency_p95_ms"]
    assert bad["error_rate"] > 5 * good["error_rate"]


def test_explicit_error_rate_and_drift_tags():
    tags = {"demo.error_rate": "0.2", "demo.drift_psi": "0.3", "demo.latency_multiplier": "oops"}
    values = _values(
        DemoSource(prices=PRICES).poll([Target("a", "prod", "custom", model_tags=tags)], at=AT)
    )
    assert values["error_rate"] == 0.2 and values["drift_psi"] == 0.3
    assert values["latency_p95_ms"] < 170  # a tag that is not a number is ignored
