"""Fleet overview, service dashboard and the one-click rollback, through the test client.
(The same flows run in a real browser in tests/browser/.)"""

import json
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from apps.metrics.models import MetricSample
from apps.releases.models import Release, ReleaseKind
from tests import factories


def _as(user):
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def two_live(people, staging, service):
    alice = people["alice"]
    good = factories.live_release(service, staging, 1, requester=alice)
    bad = factories.live_release(service, staging, 2, requester=alice)
    return good, bad


def _dashboard_url(env="staging"):
    return reverse("dashboards:service", args=["churn-model", env])


def test_fleet_lists_every_target_with_its_live_version(people, environments, two_live):
    page = _as(people["otto"]).get(reverse("dashboards:fleet"))
    assert page.status_code == 200
    body = page.content.decode()
    assert _dashboard_url("staging") in body and _dashboard_url("prod") in body
    assert f'href="{reverse("releases:detail", args=[two_live[1].pk])}">v2<' in body


def test_fleet_filters_and_sorts(people, environments, staging, two_live):
    other = factories.make_service("fraud-model", owner_team="risk-ml")
    factories.live_release(other, staging, 1, requester=people["alice"])
    client = _as(people["otto"])
    only_fraud = client.get(reverse("dashboards:fleet") + "?q=risk").content.decode()
    assert "fraud-model" in only_fraud and "churn-model</strong>" not in only_fraud
    by_name = client.get(reverse("dashboards:fleet") + "?sort=service&environment=staging")
    names = re.findall(r"<strong>([a-z-]+)</strong></a>", by_name.content.decode())
    assert names == ["churn-model", "fraud-model"]


def test_fleet_uses_a_constant_number_of_queries(people, environments, staging, two_live):
    client = _as(people["otto"])

    def count():
        client.get(reverse("dashboards:fleet"))
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(reverse("dashboards:fleet")).status_code == 200
        return len(ctx)

    few = count()
    for i in range(8):
        extra = factories.make_service(f"svc-{i}")
        factories.live_release(extra, staging, 1, requester=people["alice"])
    assert count() == few


def test_dashboard_series_never_carry_more_than_1000_points(people, staging, two_live):
    _good, bad = two_live
    now = timezone.now()
    MetricSample.objects.bulk_create(
        MetricSample(
            service=bad.service,
            environment=staging,
            release=bad,
            metric="latency_p95_ms",
            time=now - timedelta(seconds=i * 0.7),
            value=100 + (i % 50),
        )
        for i in range(5000)
    )
    page = _as(people["otto"]).get(_dashboard_url() + "?range=1h")
    figures = re.findall(
        r'<script id="chart-(\w+)" type="application/json">(.*?)</script>',
        page.content.decode(),
        re.S,
    )
    assert {name for name, _ in figures} >= {"latency", "errors", "cost", "drift"}
    latency = json.loads(json.loads(dict(figures)["latency"]))
    p95 = next(trace for trace in latency["data"] if trace["name"] == "p95")
    assert 900 <= len(p95["y"]) <= 1000
    for _, raw in figures:
        for trace in json.loads(json.loads(raw))["data"]:
            assert len(trace["x"]) <= 1000


def test_dashboard_marks_each_release_and_the_slo(people, staging, two_live):
    page = _as(people["otto"]).get(_dashboard_url())
    body = page.content.decode()
    latency = json.loads(
        json.loads(
            re.search(
                r'<script id="chart-latency" type="application/json">(.*?)</script>', body, re.S
            ).group(1)
        )
    )
    texts = [a["text"] for a in latency["layout"]["annotations"]]
    # Short labels on the chart (no overprinting at phone width); the rest on hover.
    assert "v1" in texts and "v2" in texts
    hovers = [a.get("hovertext", "") for a in latency["layout"]["annotations"]]
    assert any("(Deploy) by alice" in h for h in hovers)
    assert "SLO 250" in texts  # the service's p95 SLO
    # The band over the SLO is tinted: values in it breach.
    assert any(s["type"] == "rect" and s.get("y0") == 250 for s in latency["layout"]["shapes"])


def test_only_oncall_and_admins_see_the_rollback_button(people, two_live):
    assert b"rollback-dialog" in _as(people["otto"]).get(_dashboard_url()).content
    assert b"rollback-dialog" in _as(people["ada"]).get(_dashboard_url()).content
    for name in ("alice", "pat", "carol"):
        assert b"rollback-dialog" not in _as(people[name]).get(_dashboard_url()).content


def test_the_dialog_says_exactly_what_goes_back(people, two_live):
    good, bad = two_live
    body = _as(people["otto"]).get(_dashboard_url()).content.decode()
    assert f"v2 (release #{bad.pk}, live since" in body
    assert f'data-target-id="{good.pk}"' in body and "Roll back to v1" in body


def test_one_click_rollback_then_a_second_click_does_nothing_more(people, two_live):
    good, bad = two_live
    client = _as(people["otto"])
    url = reverse("dashboards:rollback", args=["churn-model", "staging"])
    form = {"reason": "p95 doubled", "expected_live": bad.pk, "target": good.pk}
    first = client.post(url, form, follow=True)
    assert b"is under way" in first.content
    second = _as(people["ada"]).post(url, form, follow=True)
    assert b"already under way" in second.content
    rollbacks = Release.objects.filter(kind=ReleaseKind.ROLLBACK)
    assert rollbacks.count() == 1
    assert rollbacks.get().rollback_target_id == good.pk
    progress = client.get(reverse("dashboards:rollback_progress", args=["churn-model", "staging"]))
    assert b"committed" in progress.content and b"in progress" in progress.content


def test_a_reviewer_cannot_roll_back_even_with_a_forged_post(people, two_live):
    _good, bad = two_live
    response = _as(people["pat"]).post(
        reverse("dashboards:rollback", args=["churn-model", "staging"]),
        {"reason": "x", "expected_live": bad.pk},
    )
    assert response.status_code == 403
    assert not Release.objects.filter(kind=ReleaseKind.ROLLBACK).exists()


def test_plotly_is_served_from_our_static_files(people, two_live):
    body = _as(people["otto"]).get(_dashboard_url()).content.decode()
    assert "/static/vendor/plotly.min.js" in body
    assert "cdn" not in body.lower()
    js = Client().get("/static/vendor/plotly.min.js")
    assert js.status_code == 200


def test_fleet_shows_a_dash_not_a_unit_when_a_metric_is_unknown(people, two_live):
    body = _as(people["otto"]).get(reverse("dashboards:fleet")).content.decode()
    assert "> ms<" not in body
    assert '<span class="value">—</span>' in body


def test_every_figure_is_valid_plotly(people, two_live):
    """The figures are built as plain dicts for speed; plotly's own objects validate them."""
    import plotly.graph_objects as go

    body = _as(people["otto"]).get(_dashboard_url()).content.decode()
    figures = re.findall(
        r'<script id="chart-\w+" type="application/json">(.*?)</script>', body, re.S
    )
    assert len(figures) == 5
    for raw in figures:
        go.Figure(json.loads(json.loads(raw)))  # raises on any unknown property or bad value


def test_slos_breached_since_the_same_poll_read_latency_first():
    # The rollback reason on the fleet and the dashboard starts from this text; the
    # database returns the breaches in whatever order its plan gives.
    from apps.dashboards.slo_text import breach_summary
    from apps.metrics.selectors import Breach

    since = timezone.now() - timedelta(minutes=1)
    breaches = {
        "error_rate": Breach("error_rate", since, 0.0182, 0.01),
        "latency_p95_ms": Breach("latency_p95_ms", since, 324, 250),
    }
    text = breach_summary(breaches, now=timezone.now())
    assert text.startswith("p95 324 ms over SLO 250 ms") and "; errors 1.82 %" in text
    earlier = since - timedelta(minutes=5)
    older = {**breaches, "error_rate": Breach("error_rate", earlier, 0.02, 0.01)}
    assert breach_summary(older).startswith("errors ")
