"""The step controller end to end: a real Prometheus with backfilled per-revision series,
a real GitOps repository, the releases' own services.

The series are the analysis tests' (tests/metrics/test_analysis_prometheus.py: one
stable revision and four candidates over the same window), labelled by model version as
a plain Deployment's pods are (``app.kubernetes.io/version``): stable v3, and candidates
v4 (clearly good), v5 (clearly bad: 10% errors, p95 x3), v6 (latency fine, output
distribution drifted: PSI ~0.49) and v7 (not enough traffic). Each candidate rolls out
in prod over v3 with a canary plan; the step's window is the analysis tests' 15 minutes.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from apps.gitops.render import METADATA_FILE
from apps.gitops.workloads import WorkloadReader
from apps.metrics.analysis.queries import DEPLOYMENT_DEFAULTS
from apps.metrics.services import rollouts_step
from apps.metrics.services.rollout import analysis_revisions
from apps.metrics.sources.promapi import PrometheusClient
from apps.notifications.events import EventKind
from apps.notifications.models import Notification
from apps.releases import services
from apps.releases.deploy import deploy_pending
from apps.releases.models import ApprovalRule, Release, ReleaseState, Rollout, RolloutState
from apps.releases.rollout import serving_object
from tests import factories
from tests.fixtures.kube import INFERENCE_SERVICES
from tests.metrics.test_analysis_prometheus import END, PRICES, START, analysis_openmetrics

pytestmark = pytest.mark.slow

REVISION_OF = {"v3": 3, "v4-good": 4, "v4-bad": 5, "v4-drift": 6, "v4-quiet": 7}
PLAN = {
    "strategy": "canary",
    "steps": [{"weight": 10, "observe": {"minutes": 15}}, {"weight": 50}],
}
FOLDER = "environments/prod/churn-model"


def controller_openmetrics() -> str:
    """The analysis tests' series, with each revision named by its model version."""
    text = analysis_openmetrics()
    for name, version in REVISION_OF.items():
        text = text.replace(f'="{name}"', f'="{version}"')
    return text


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
def prod_direct(prod):
    """prod taking releases directly and without reviewers, so each test is about the
    controller (approval of plans is tested in tests/releases/test_progressive.py)."""
    prod.promotes_from = None
    prod.save()
    ApprovalRule.objects.filter(environment=prod).delete()
    return prod


@pytest.fixture
def stable(alice, service, prod_direct):
    return factories.live_release(service, prod_direct, 3, requester=alice)


def _rolling_out(alice, service, prod, writer, version: int, plan=PLAN) -> Release:
    """``version`` approved with the canary plan and its first step committed, the step
    started at the start of the backfilled window."""
    release, _ = services.release_create(
        actor=alice,
        service=service,
        environment=prod,
        model_version=factories.make_model_version(service.registered_model, version),
        reason=f"v{version}",
        rollout=plan,
    )
    services.release_submit(actor=alice, release=release)
    deploy_pending(writer=writer)
    Rollout.objects.filter(release=release).update(step_started_at=START)
    release.refresh_from_db()
    assert release.rollout.step == 1, release.status_message
    return release


def _last_trailers(remote) -> dict[str, str]:
    return dict(
        line.split(": ", 1)
        for line in remote.messages()[0].splitlines()
        if ": " in line and line[0].isupper()
    )


def _manifests(files):
    return {name: text for name, text in files.items() if name != METADATA_FILE}


def test_a_good_candidate_advances_after_its_window_and_walks_to_100(
    alice, service, prod_direct, stable, writer, client, gitops_remote
):
    release = _rolling_out(alice, service, prod_direct, writer, 4)
    early = rollouts_step(now=START + timedelta(minutes=10), client=client, writer=writer)
    assert [(d.action, d.verdict) for d in early] == [("observe", "pass")]
    assert "10 of 15 minutes" in early[0].message
    decisions = rollouts_step(now=END, client=client, writer=writer)
    assert [(d.action, d.verdict) for d in decisions] == [("advance", "pass")]
    rollout = Rollout.objects.get(release=release)
    assert rollout.step == 2
    trailers = _last_trailers(gitops_remote)
    assert trailers["Rollout-Step"] == "2/3" and trailers["Rollout-Weight"] == "50"
    assert trailers["Analysis-Verdict"] == "pass"
    # The verdict is stored with its numbers.
    judged = rollout.steps.get(number=1)
    assert judged.verdict == "pass"
    checks = {c["name"]: c for c in judged.analysis["checks"]}
    assert checks["latency_p95"]["candidate"] == pytest.approx(240.625)
    # Step 2 is judged on its own window: the same series again pass, then 100%.
    Rollout.objects.filter(pk=rollout.pk).update(step_started_at=START)
    rollouts_step(now=END, client=client, writer=writer)
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.PROMOTED and rollout.step == 3
    assert _manifests(gitops_remote.files_at(FOLDER)) == release.rendered_files


@pytest.mark.parametrize(
    ("version", "failed"),
    [(5, {"latency_p95", "error_rate"}), (6, {"output_psi", "agreement"})],
    ids=["clearly-bad", "latency-fine-but-drifted"],
)
def test_a_failing_candidate_is_aborted_in_the_same_poll_and_held(
    alice, service, prod_direct, stable, writer, client, gitops_remote, version, failed
):
    release = _rolling_out(alice, service, prod_direct, writer, version)
    before = gitops_remote.commit_count()
    # Well inside the window: a measured regression does not wait for the window's end.
    decisions = rollouts_step(now=END, client=client, writer=writer)
    assert [(d.action, d.verdict) for d in decisions] == [("abort", "fail")]
    assert gitops_remote.commit_count() == before + 1  # the abort commit, in this pass
    trailers = _last_trailers(gitops_remote)
    assert trailers["Rollout-Step"] == "abort" and trailers["Analysis-Verdict"] == "fail"
    assert _manifests(gitops_remote.files_at(FOLDER)) == stable.rendered_files
    rollout = Rollout.objects.get(release=release)
    release.refresh_from_db()
    assert rollout.state == RolloutState.HELD and release.state == ReleaseState.FAILED
    step = rollout.steps.get(number=1)
    assert {c["name"] for c in step.analysis["checks"] if c["verdict"] == "fail"} == failed
    # The requester and on-call are told, once, by the automatic abort's notification.
    (told,) = Notification.objects.filter(kind=EventKind.AUTO_ABORT)
    assert told.url.endswith(f"/releases/{release.pk}/")
    # Automation does not try again: later polls commit nothing.
    rollouts_step(now=END, client=client, writer=writer)
    assert gitops_remote.commit_count() == before + 1
    assert Notification.objects.filter(kind=EventKind.AUTO_ABORT).count() == 1


def test_too_little_traffic_keeps_observing_then_pauses_and_never_promotes(
    alice, service, prod_direct, stable, writer, client, gitops_remote
):
    # A 5-minute step: inconclusive for three times that pauses it for a person.
    plan = {"strategy": "canary", "steps": [{"weight": 10, "observe": {"minutes": 5}}]}
    release = _rolling_out(alice, service, prod_direct, writer, 7, plan)
    before = gitops_remote.commit_count()
    decisions = rollouts_step(now=START + timedelta(minutes=10), client=client, writer=writer)
    assert [(d.action, d.verdict) for d in decisions] == [("observe", "inconclusive")]
    rollout = Rollout.objects.get(release=release)
    assert rollout.state == RolloutState.RUNNING and "observing longer" in rollout.message
    assert "candidate had" in rollout.steps.get(number=1).verdict_message
    decisions = rollouts_step(now=END, client=client, writer=writer)
    assert [(d.action, d.verdict) for d in decisions] == [("pause", "inconclusive")]
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.PAUSED
    assert "not promoting on too little data" in rollout.message
    assert gitops_remote.commit_count() == before
    # Paused: later polls judge nothing and commit nothing.
    assert rollouts_step(now=END, client=client, writer=writer) == []


def test_a_metrics_source_that_is_down_pauses_the_step_with_the_reason(
    alice, service, prod_direct, stable, writer, gitops_remote, closed_port
):
    release = _rolling_out(alice, service, prod_direct, writer, 4)
    down = PrometheusClient(f"http://127.0.0.1:{closed_port}", timeout=2)
    try:
        decisions = rollouts_step(now=END, client=down, writer=writer)
    finally:
        down.close()
    assert [d.action for d in decisions] == ["pause"]
    rollout = Rollout.objects.get(release=release)
    assert rollout.state == RolloutState.PAUSED and rollout.step == 1
    assert "metrics source is down" in rollout.message


def test_in_the_demo_a_drifted_candidate_is_aborted_at_10_and_a_good_one_walks_to_100(
    alice, service, prod_direct, stable, writer, gitops_remote, settings
):
    """``METRICS_BACKEND=demo`` (``make demo``, no Prometheus): the simulator's
    per-revision figures, from the model versions' demo tags, judged by the same checks."""
    from django.utils import timezone

    from apps.registry.models import ModelVersion

    settings.METRICS_BACKEND = "demo"
    ModelVersion.objects.filter(name=service.registered_model, version=6).delete()
    factories.make_model_version(service.registered_model, 6, tags={"demo.drift_psi": "0.4"})
    drifted = _rolling_out(alice, service, prod_direct, writer, 6)
    now = timezone.now()
    Rollout.objects.filter(release=drifted).update(step_started_at=now - timedelta(minutes=2))
    decisions = rollouts_step(now=now, writer=writer)
    assert [(d.action, d.verdict) for d in decisions] == [("abort", "fail")]
    checks = {
        c["name"]: c["verdict"]
        for c in Rollout.objects.get(release=drifted).steps.get(number=1).analysis["checks"]
    }
    assert checks["output_psi"] == "fail"
    assert checks["latency_p95"] == checks["error_rate"] == "pass"
    assert _last_trailers(gitops_remote)["Rollout-Step"] == "abort"

    good = _rolling_out(alice, service, prod_direct, writer, 4)
    rollout = Rollout.objects.get(release=good)
    for weight in (50, 100):
        Rollout.objects.filter(pk=rollout.pk).update(
            step_started_at=timezone.now() - timedelta(minutes=16)
        )
        decisions = rollouts_step(writer=writer)
        assert [(d.action, d.verdict) for d in decisions] == [("advance", "pass")]
        assert _last_trailers(gitops_remote)["Rollout-Weight"] == str(weight)
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.PROMOTED


def test_a_shadow_run_leaves_a_report_with_the_release_and_in_front_of_later_reviewers(
    alice, service, prod_direct, stable, writer, settings
):
    """Shadow evaluation as approval evidence: the judged shadow step is shown on its own
    release's page, and on the page (and in the approval snapshot) of a later release of
    the same version in the same environment, before it deploys."""
    from django.utils import timezone

    from apps.metrics.panels import shadow_report
    from apps.releases.panels import release_panels
    from apps.releases.selectors import review_snapshot

    settings.METRICS_BACKEND = "demo"
    shadow_plan = {"strategy": "shadow", "mirror_percent": 20, "observe": {"minutes": 30}}
    shadowed = _rolling_out(alice, service, prod_direct, writer, 4, shadow_plan)
    Rollout.objects.filter(release=shadowed).update(
        step_started_at=timezone.now() - timedelta(minutes=5)
    )
    decisions = rollouts_step(writer=writer)
    assert [(d.action, d.verdict) for d in decisions] == [("observe", "pass")]
    report = shadow_report(shadowed)
    assert report["mirror_percent"] == 20 and report["verdict"] == "pass"
    # 50 requests/s for 5 minutes: production answered all, the shadow 20% of them.
    assert report["requests"]["stable"] == pytest.approx(15000, rel=0.01)
    assert report["requests"]["candidate"] == pytest.approx(3000, rel=0.01)
    labels = {row["label"] for row in report["rows"]}
    assert {"Latency p95", "Error rate", "Output PSI (shadow against production)"} <= labels

    later, _ = services.release_create(
        actor=alice,
        service=service,
        environment=prod_direct,
        model_version=shadowed.model_version,
        reason="ship v4 after its shadow run",
        rollout={"strategy": "all-at-once"},
    )
    assert shadow_report(later)["release_id"] == shadowed.pk
    snapshot = review_snapshot(later, panels=release_panels(later))
    assert snapshot["shadow"]["release_id"] == shadowed.pk
    from django.test import Client

    browser = Client()
    browser.force_login(alice)
    page = browser.get(f"/releases/{later.pk}/").content.decode()
    assert "Shadow evaluation" in page and 'data-testid="shadow-report"' in page
    assert f"/releases/{shadowed.pk}/" in page


# --- KServe (Knative mode): the revisions are named by the InferenceService's status ------

KSERVE_REVISIONS = {"v3": "churn-model-predictor-00003", "v4-bad": "churn-model-predictor-00004"}


@pytest.fixture(scope="module")
def knative_prom(prometheus_session_factory):
    """The analysis tests' stable and clearly-bad series, each named by a Knative revision."""
    text = analysis_openmetrics()
    for name, revision in KSERVE_REVISIONS.items():
        text = text.replace(f'="{name}"', f'="{revision}"')
    return prometheus_session_factory(openmetrics=text)


def _isvc(release, predictor: dict) -> dict:
    obj = serving_object(release)
    assert obj is not None and obj["kind"] == "InferenceService"
    return {
        "apiVersion": obj["apiVersion"],
        "kind": "InferenceService",
        "metadata": {"name": obj["metadata"]["name"], "namespace": obj["metadata"]["namespace"]},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "components": {"predictor": predictor},
        },
    }


def test_a_kserve_canary_is_judged_on_the_revisions_its_status_names(
    alice, prod_direct, writer, gitops_remote, knative_prom, kube_api, kube_api_client, settings
):
    settings.METRICS_PRICES = PRICES
    # The backfilled series carry a Deployment's label names (the analysis tests' shapes),
    # so read them with the Deployment templates; the revision names come from KServe.
    settings.METRICS_ANALYSIS_PROMQL_OVERRIDES = {"*/kserve-sklearn": dict(DEPLOYMENT_DEFAULTS)}
    service = factories.make_service(
        "churn-model",
        runtime="kserve-sklearn",
        default_config={"storage_uri": "s3://models/churn-model/current"},
    )
    factories.live_release(service, prod_direct, 3, requester=alice)
    release = _rolling_out(alice, service, prod_direct, writer, 4)
    workloads = WorkloadReader(kube_api_client, timeout=5)
    candidate, stable = KSERVE_REVISIONS["v4-bad"], KSERVE_REVISIONS["v3"]

    # Not judged until KServe has the candidate's revision ready beside the stable one.
    assert "does not exist yet" in analysis_revisions(release, workloads)
    kube_api.put_object(
        INFERENCE_SERVICES,
        _isvc(
            release,
            {
                "latestCreatedRevision": candidate,
                "latestReadyRevision": stable,
                "latestRolledoutRevision": stable,
            },
        ),
    )
    assert "not ready yet" in analysis_revisions(release, workloads)
    kube_api.put_object(
        INFERENCE_SERVICES,
        _isvc(
            release,
            {
                "latestCreatedRevision": candidate,
                "latestReadyRevision": candidate,
                "latestRolledoutRevision": stable,
            },
        ),
    )
    assert analysis_revisions(release, workloads) == (candidate, stable)

    client = PrometheusClient(knative_prom.url, timeout=5)
    try:
        decisions = rollouts_step(now=END, client=client, writer=writer, workloads=workloads)
    finally:
        client.close()
    assert [(d.action, d.verdict) for d in decisions] == [("abort", "fail")]
    rollout = Rollout.objects.get(release=release)
    assert rollout.state == RolloutState.HELD
    assert _last_trailers(gitops_remote)["Rollout-Step"] == "abort"
