"""apps/core/ops.py: the registry the ops endpoints read. Each app adds its own readiness
checks and metric collectors from ``ready()``; /readyz and /metrics serve what is there."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from apps.core import ops
from apps.core.ops import CheckResult, register_metrics_collector, register_readiness_check

URLS = "tests.controlplane.urls_minimal"


@pytest.fixture
def scratch_registry(monkeypatch):
    """The real registrations, restored after the test whatever it adds."""
    monkeypatch.setattr(ops, "_checks", dict(ops._checks))
    monkeypatch.setattr(ops, "_collectors", dict(ops._collectors))


def test_each_app_registered_its_part_in_installed_apps_order():
    assert list(ops.readiness_checks()) == ["database", "broker", "git"]
    assert ops.readiness_checks()["database"].on_calling_thread
    assert not ops.readiness_checks()["git"].on_calling_thread
    assert list(ops.metrics_collectors()) == [
        "registry",
        "notifications",
        "releases",
        "metrics_sources",
    ]


def test_registering_a_name_again_replaces_it_in_place(scratch_registry):
    def always_ok(timeout):
        return CheckResult(True, "fine")

    register_readiness_check("broker", always_ok)
    assert list(ops.readiness_checks()) == ["database", "broker", "git"]
    assert ops.readiness_checks()["broker"].check is always_ok


def test_readyz_serves_a_check_an_app_adds(scratch_registry, settings):
    settings.ROOT_URLCONF = URLS
    register_readiness_check("cluster", lambda timeout: CheckResult(False, f"gave up {timeout}"))
    settings.READINESS_TIMEOUT_SECONDS = 2
    response = Client().get("/readyz?checks=cluster")
    body = json.loads(response.content)
    assert response.status_code == 503
    assert body["checks"]["cluster"]["detail"] == "gave up 2.0"
    listed = json.loads(Client().get("/readyz?checks=nope").content)["detail"]
    assert listed.endswith("database, broker, git, cluster.")


@pytest.mark.django_db
def test_metrics_serves_a_collector_an_app_adds(scratch_registry, settings):
    from prometheus_client.core import GaugeMetricFamily

    settings.ROOT_URLCONF = URLS
    settings.METRICS_TOKEN = ""
    settings.METRICS_PUBLIC = True

    def queue_depth():
        yield GaugeMetricFamily(f"{ops.METRICS_PREFIX}_test_depth", "A test gauge.", value=3)

    register_metrics_collector("test_part", queue_depth)
    text = Client().get("/metrics").content.decode()
    assert f"{ops.METRICS_PREFIX}_test_depth 3.0" in text
    assert f'{ops.METRICS_PREFIX}_state_collect_ok{{part="test_part"}} 1.0' in text


def test_short_reason_is_one_capped_line():
    assert ops.short_reason("a\n  b\tc") == "a b c"
    long = ops.short_reason("x" * 500)
    assert len(long) == 200 and long.endswith("…")
