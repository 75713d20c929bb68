"""Serving objects' and Jobs' own status through the official client, against the kmock
Kubernetes API double, with objects shaped like KServe and Seldon write them."""

from __future__ import annotations

import kmock
import pytest

from apps.gitops.errors import ClusterError, ClusterUnavailable
from apps.gitops.workloads import WorkloadReader, canary_revisions
from tests.fixtures.kube import INFERENCE_SERVICES, JOBS, KubeApiDouble


@pytest.fixture
def workloads(kube_api_client) -> WorkloadReader:
    return WorkloadReader(kube_api_client, timeout=5)


def isvc(status: dict) -> dict:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "churn", "namespace": "prod", "generation": 3},
        "status": {"observedGeneration": 1, **status},
    }


def test_inference_service_that_failed_to_load(kube_api: KubeApiDouble, workloads):
    kube_api.put_object(
        INFERENCE_SERVICES,
        isvc(
            {
                "conditions": [{"type": "Ready", "status": "False"}],
                "modelStatus": {
                    "transitionStatus": "BlockedByFailedLoad",
                    "lastFailureInfo": {"reason": "ModelLoadFailed", "message": "bad pickle"},
                },
            }
        ),
    )
    own = workloads.serving_status(kind="InferenceService", namespace="prod", name="churn")
    assert (own.state, own.message) == (
        "failed",
        "model failed to load: ModelLoadFailed: bad pickle",
    )


def test_inference_service_new_revision_then_ready(kube_api, workloads):
    ready = [{"type": "Ready", "status": "True"}, {"type": "PredictorReady", "status": "True"}]
    predictor = {
        "latestCreatedRevision": "churn-predictor-00002",
        "latestReadyRevision": "churn-predictor-00001",
    }
    kube_api.put_object(
        INFERENCE_SERVICES, isvc({"conditions": ready, "components": {"predictor": predictor}})
    )
    own = workloads.serving_status(kind="InferenceService", namespace="prod", name="churn")
    assert own.state == "progressing" and "churn-predictor-00002" in own.message
    predictor["latestReadyRevision"] = "churn-predictor-00002"
    kube_api.put_object(
        INFERENCE_SERVICES, isvc({"conditions": ready, "components": {"predictor": predictor}})
    )
    # observedGeneration (1) is the Knative Service's, not the InferenceService's (3).
    assert workloads.serving_status(kind="InferenceService", namespace="prod", name="churn").ready


def test_missing_object_and_refusals(kube_api, workloads):
    assert (
        workloads.serving_status(kind="Model", namespace="prod", name="nobody").state == "missing"
    )
    kube_api._in_loop(lambda: kube_api.emulator["get", kmock.name("churn")] << 403)
    with pytest.raises(ClusterError):
        workloads.serving_status(kind="InferenceService", namespace="prod", name="churn")
    kube_api._in_loop(lambda: kube_api.emulator["list", kmock.resource("jobs")] << 503)
    with pytest.raises(ClusterUnavailable):
        workloads.release_jobs(namespace="prod", release_id="r1")


def test_jobs_of_one_release_by_label_oldest_first(kube_api, workloads):
    def job(name, release, created, conditions):
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": name,
                "namespace": "prod",
                "labels": {"slipway.io/release-id": release},
                "creationTimestamp": created,
            },
            "status": {"conditions": conditions},
        }

    kube_api.put_object(JOBS, job("b", "r1", "2026-12-02T04:00:00Z", []))
    kube_api.put_object(
        JOBS, job("a", "r1", "2026-12-01T03:00:00Z", [{"type": "Complete", "status": "True"}])
    )
    kube_api.put_object(JOBS, job("c", "r2", "2026-12-01T02:00:00Z", []))
    runs = workloads.release_jobs(namespace="prod", release_id="r1")
    assert [(r.name, r.state) for r in runs] == [("a", "succeeded"), ("b", "running")]
    assert "labelSelector=slipway.io" in str(kube_api.requests[-1].url).replace("%2F", "/")


def test_canary_revisions_as_kserves_knative_reconciler_reports_them(kube_api, workloads):
    assert workloads.inference_service(namespace="prod", name="churn") is None
    predictor = {
        "latestCreatedRevision": "churn-predictor-00002",
        "latestReadyRevision": "churn-predictor-00002",
        "latestRolledoutRevision": "churn-predictor-00001",
    }
    kube_api.put_object(INFERENCE_SERVICES, isvc({"components": {"predictor": predictor}}))
    live = workloads.inference_service(namespace="prod", name="churn")
    # The latest revision takes canaryTrafficPercent, the last one rolled out the rest.
    assert canary_revisions(live) == ("churn-predictor-00002", "churn-predictor-00001")
    # Promoted (the canary field dropped): the new revision has all the traffic.
    rolled = {**predictor, "latestRolledoutRevision": "churn-predictor-00002"}
    assert "already has all the traffic" in canary_revisions(
        isvc({"components": {"predictor": rolled}})
    )
    # A first release has no rolled-out revision to compare with.
    first = {k: v for k, v in predictor.items() if k != "latestRolledoutRevision"}
    assert "no rolled-out revision" in canary_revisions(isvc({"components": {"predictor": first}}))
    assert "not ready yet" in canary_revisions(isvc({}))
