"""Shadow evaluations judged end to end: a real Prometheus with backfilled per-revision
series (the analysis tests' window, tests/metrics/test_analysis_prometheus.py), a real
GitOps repository, the releases' own services.

Production is v3, live in prod. Each candidate waits for pat's and carol's approval while
20% of production's requests are mirrored to it for 15 minutes: v4 (clearly good: 49 of
50 mirrored answers agree), v6 (latency fine, outputs drifted: PSI ~0.49, 40 of 50
agree) and v7 (not enough traffic).
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from apps.metrics.services import rollouts_step
from apps.metrics.sources.promapi import PrometheusClient
from apps.notifications.events import EventKind
from apps.notifications.models import Notification
from apps.releases import services
from apps.releases.deploy import deploy_pending, release_commit_files, rollout_commit_pending
from apps.releases.models import Release, ReleaseState, ShadowEvaluation, ShadowState
from tests import factories
from tests.metrics.test_analysis_prometheus import END, PRICES, START
from tests.metrics.test_rollout_controller import FOLDER, controller_openmetrics

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def prom(prometheus_session_factory):
    return prometheus_session_factory(openmetrics=controller_openmetrics())


@pytest.fixture
def client(prom, settings):
    settings.METRICS_PRICES = PRICES
    client = PrometheusClient(prom.url, timeout=5)
    yield client
    client.close()


@pytest.fixture
def writer(gitops_remote, make_git_writer):
    return make_git_writer(gitops_remote.url)


@pytest.fixture
def prod_shadowed(prod):
    prod.promotes_from = None
    prod.shadow_evaluation = "required"
    prod.config_overrides = {
        "shadow_evaluation": {"mirror_percent": 20, "observe": {"minutes": 15}}
    }
    prod.save()
    return prod


@pytest.fixture
def live(alice, pat, carol, service, prod_shadowed, writer):
    release = factories.approved_release(
        service, prod_shadowed, 3, requester=alice, approvers=(pat, carol)
    )
    deploy_pending(writer=writer)
    release.refresh_from_db()
    return services.release_mark_live(release=release)


def _evaluating(alice, service, prod, writer, version: int, started=START) -> ShadowEvaluation:
    """``version`` submitted (the required policy starts its evaluation), the start
    commit made, the mirror started at ``started``."""
    release = factories.draft_release(service, prod, version, requester=alice)
    services.release_submit(actor=alice, release=release)
    rollout_commit_pending(writer=writer)
    evaluation = ShadowEvaluation.objects.get(release=release)
    assert evaluation.state == ShadowState.RUNNING, evaluation.message
    ShadowEvaluation.objects.filter(pk=evaluation.pk).update(started_at=started)
    evaluation.refresh_from_db()
    return evaluation


def test_a_good_candidate_is_judged_after_its_window_and_the_mirror_ends_in_the_same_pass(
    alice, pat, carol, service, prod_shadowed, live, writer, client, gitops_remote
):
    evaluation = _evaluating(alice, service, prod_shadowed, writer, 4)
    rollouts_step(now=START + timedelta(minutes=10), client=client, writer=writer)
    evaluation.refresh_from_db()
    assert evaluation.state == ShadowState.RUNNING and evaluation.judged_at is None
    assert "10 of 15 minutes" in evaluation.message
    assert evaluation.requests and evaluation.requests > 0  # requests so far, shown live
    with pytest.raises(Exception, match="still running"):
        services.release_approve(actor=pat, release=evaluation.release)

    rollouts_step(now=END, client=client, writer=writer)
    evaluation.refresh_from_db()
    assert evaluation.verdict == "pass" and evaluation.judged_at is not None
    # The end commit was made in the same pass: the live release's own files are back.
    assert evaluation.state == ShadowState.DONE and evaluation.end_commit_sha
    assert gitops_remote.files_at(FOLDER) == release_commit_files(live)
    checks = {c["name"]: c for c in evaluation.analysis["checks"]}
    assert checks["agreement"]["candidate"] == pytest.approx(0.98)
    assert evaluation.analysis["start"] == START.isoformat()
    assert evaluation.analysis["end"] == END.isoformat()
    assert evaluation.analysis["requests"]["candidate"] == pytest.approx(3000, rel=0.05)
    # Reviewers hear of it, and may now approve.
    assert Notification.objects.filter(kind=EventKind.SHADOW_REPORT).exists()
    services.release_approve(actor=pat, release=evaluation.release)
    services.release_approve(actor=carol, release=evaluation.release)
    release = Release.objects.get(pk=evaluation.release_id)
    assert release.state == ReleaseState.APPROVED
    assert release.approvals.first().evidence["shadow"]["verdict"] == "pass"
    live.refresh_from_db()
    assert live.state == ReleaseState.LIVE


def test_a_drifted_candidate_fails_at_once_and_approval_is_blocked(
    alice, pat, service, prod_shadowed, live, writer, client, gitops_remote
):
    evaluation = _evaluating(alice, service, prod_shadowed, writer, 6)
    rollouts_step(now=START + timedelta(minutes=10), client=client, writer=writer)
    evaluation.refresh_from_db()
    assert evaluation.verdict == "fail", evaluation.message
    assert evaluation.state == ShadowState.DONE
    checks = {c["name"]: c for c in evaluation.analysis["checks"]}
    assert checks["output_psi"]["verdict"] == "fail"
    assert checks["output_psi"]["candidate"] == pytest.approx(0.49, abs=0.05)
    assert checks["latency_p95"]["verdict"] == "pass"
    assert gitops_remote.files_at(FOLDER) == release_commit_files(live)
    with pytest.raises(Exception, match="failed"):
        services.release_approve(actor=pat, release=evaluation.release)


def test_too_little_traffic_is_inconclusive_never_a_pass(
    alice, service, prod_shadowed, live, writer, client
):
    evaluation = _evaluating(alice, service, prod_shadowed, writer, 7)
    rollouts_step(now=END, client=client, writer=writer)
    evaluation.refresh_from_db()
    assert evaluation.state == ShadowState.RUNNING and evaluation.judged_at is None
    assert evaluation.verdict == "inconclusive"  # so far; the mirror keeps running
    # Three windows without enough data: the report is final, and says so.
    rollouts_step(now=START + timedelta(minutes=45), client=client, writer=writer)
    evaluation.refresh_from_db()
    assert evaluation.verdict == "inconclusive" and evaluation.judged_at is not None
    assert "not enough mirrored traffic" in evaluation.verdict_message
    assert evaluation.state == ShadowState.DONE


def test_a_metrics_source_down_waits_with_the_reason(alice, service, prod_shadowed, live, writer):
    evaluation = _evaluating(alice, service, prod_shadowed, writer, 4)
    dead = PrometheusClient("http://127.0.0.1:9", timeout=1)
    try:
        rollouts_step(now=END, client=dead, writer=writer)
    finally:
        dead.close()
    evaluation.refresh_from_db()
    assert evaluation.state == ShadowState.RUNNING and evaluation.judged_at is None
    assert "metrics source is down" in evaluation.message
    assert not evaluation.end_commit_sha


def test_the_demo_simulator_judges_it_too(alice, service, prod_shadowed, live, writer, settings):
    """``make demo`` has no Prometheus: the simulator's per-revision figures are judged
    by the same checks, and the page shows the report."""
    from django.test import Client
    from django.utils import timezone

    settings.METRICS_BACKEND = "demo"
    prod_shadowed.config_overrides = {
        "shadow_evaluation": {"mirror_percent": 20, "observe": {"minutes": 1}}
    }
    prod_shadowed.save()
    evaluation = _evaluating(
        alice, service, prod_shadowed, writer, 4, started=timezone.now() - timedelta(minutes=2)
    )
    rollouts_step(writer=writer)
    evaluation.refresh_from_db()
    assert evaluation.verdict == "pass" and evaluation.state == ShadowState.DONE
    browser = Client()
    browser.force_login(alice)
    page = browser.get(f"/releases/{evaluation.release_id}/").content.decode()
    assert 'data-testid="shadow-report"' in page and "judged: pass" in page
    assert "Output PSI (shadow against production)" in page
    # Mirrored requests are answered by both models: the simulator compares their classes
    # (99% for a retrained model without drift), and the report says when, in words.
    checks = {c["name"]: c for c in evaluation.analysis["checks"]}
    assert checks["agreement"]["verdict"] == "pass", checks["agreement"]
    assert "Agreement with production" in page and "99.00%" in page
    assert re.search(r"Report: \d{4}-\d\d-\d\d \d\d:\d\d to [\d:]+ UTC \(\d+ min\)", page)


def test_the_demo_simulator_agrees_less_with_a_drifted_candidate():
    from apps.metrics.sources.demo import demo_analysis_inputs

    def agreement(tags):
        inputs = demo_analysis_inputs(
            candidate="v4", stable="v3", candidate_tags=tags, stable_tags={},
            slo_p95_ms=250, slo_error_rate=0.02, share_percent=20, mirrored=True,
            start=START, end=START + timedelta(minutes=10),
        )  # fmt: skip
        return inputs.agreed / inputs.compared

    assert agreement({}) == pytest.approx(0.99)
    # The README's drifted v4 (PSI 0.49) changes the class of about one answer in six:
    # under the default agreement floor of 95%.
    assert 0.75 < agreement({"demo.drift_psi": "0.49"}) < 0.95
    canary = demo_analysis_inputs(
        candidate="v4", stable="v3", candidate_tags={}, stable_tags={}, slo_p95_ms=250,
        slo_error_rate=0.02, share_percent=10, mirrored=False, start=START,
        end=START + timedelta(minutes=10),
    )  # fmt: skip
    assert canary.compared is None  # a canary's requests are answered by one model only
