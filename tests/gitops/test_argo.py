"""Argo CD status through the official kubernetes client, over HTTP, against the kmock
Kubernetes API double; and the refresh call to Argo CD's REST API."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import kmock
import pytest

from apps.gitops.argo import ArgoRefresher, ArgoStatusReader, build_api_client
from apps.gitops.errors import ClusterError, ClusterUnavailable
from tests.fixtures.kube import TOKEN, KubeApiDouble
from tests.fixtures.network import free_port

APP = "churn-staging"
COMMIT = "3f2a9c1d" + "0" * 32
OLD_COMMIT = "9e8d7c6b" + "0" * 32


@pytest.fixture
def reader(kube_api_client) -> ArgoStatusReader:
    return ArgoStatusReader(kube_api_client, namespace="argocd", timeout=5)


def test_status_moves_from_out_of_sync_to_healthy_to_degraded(kube_api: KubeApiDouble, reader):
    # Just pushed: Argo CD sees the new commit, not yet applied.
    kube_api.set_application(APP, sync="OutOfSync", revision=COMMIT, health="Healthy")
    status = reader.get(APP)
    assert status.exists and (status.sync_status, status.revision) == ("OutOfSync", COMMIT)
    assert not status.synced

    # Syncing: new pods are starting.
    kube_api.set_application(
        APP,
        sync="Synced",
        revision=COMMIT,
        health="Progressing",
        phase="Running",
        message="waiting for healthy state of apps/Deployment/churn",
    )
    status = reader.get(APP)
    assert (status.health_status, status.operation_phase) == ("Progressing", "Running")
    assert status.synced and not status.healthy and not status.degraded

    # Live.
    kube_api.set_application(
        APP,
        sync="Synced",
        revision=COMMIT,
        health="Healthy",
        phase="Succeeded",
        message="successfully synced (all tasks run)",
    )
    status = reader.get(APP)
    assert status.synced and status.healthy and not status.degraded
    assert status.revision == COMMIT

    # Later, the pods crash-loop.
    kube_api.set_application(
        APP,
        sync="Synced",
        revision=COMMIT,
        health="Degraded",
        phase="Succeeded",
        health_message='Deployment "churn" exceeded its progress deadline',
    )
    status = reader.get(APP)
    assert status.degraded
    assert status.message == 'Deployment "churn" exceeded its progress deadline'


def test_failed_sync_message_comes_first(kube_api, reader):
    kube_api.set_application(
        APP,
        sync="OutOfSync",
        revision=COMMIT,
        health="Healthy",
        phase="Failed",
        message="one or more objects failed to apply: admission webhook denied",
        conditions=[{"type": "SyncError", "message": "sync failed"}],
    )
    status = reader.get(APP)
    assert status.degraded
    assert status.message.startswith("one or more objects failed to apply")


def test_operation_phase_message_and_failing_resource_are_read(kube_api, reader):
    kube_api.set_application(
        APP,
        sync="OutOfSync",
        revision=COMMIT,
        health="Healthy",
        phase="Failed",
        message="one or more objects failed to apply, reason: admission webhook denied",
        resources=[
            {"group": "apps", "kind": "Deployment", "name": "churn", "status": "Synced"},
            {
                "group": "serving.kserve.io",
                "kind": "InferenceService",
                "name": "churn",
                "status": "SyncFailed",
                "message": 'spec.predictor: Invalid value: "sklearnx"',
            },
        ],
    )
    status = reader.get(APP)
    assert (status.operation_phase, status.operation_revision) == ("Failed", COMMIT)
    assert status.operation_failed and status.operation_at_revision
    assert (
        status.resource_message
        == 'InferenceService/churn: spec.predictor: Invalid value: "sklearnx"'
    )
    assert status.failure_message == (
        "one or more objects failed to apply, reason: admission webhook denied; "
        'InferenceService/churn: spec.predictor: Invalid value: "sklearnx"'
    )


def test_an_operation_for_an_older_revision_is_told_apart(kube_api, reader):
    kube_api.set_application(
        APP,
        sync="OutOfSync",
        revision=COMMIT,
        health="Healthy",
        phase="Failed",
        operation_revision=OLD_COMMIT,
        message="old failure",
    )
    status = reader.get(APP)
    assert status.operation_revision == OLD_COMMIT and not status.operation_at_revision


def test_a_branch_name_as_operation_revision_is_not_a_commit(kube_api, reader):
    kube_api.set_application(
        APP,
        sync="Synced",
        revision=COMMIT,
        health="Healthy",
        phase="Succeeded",
        operation_revision="main",
    )
    assert reader.get(APP).operation_revision == ""


def test_suspended_health_and_its_message(kube_api, reader):
    kube_api.set_application(
        APP,
        sync="Synced",
        revision=COMMIT,
        health="Suspended",
        phase="Succeeded",
        health_message="ScaledObject is paused",
    )
    status = reader.get(APP)
    assert (status.health_status, status.health_message) == ("Suspended", "ScaledObject is paused")
    assert not status.degraded and not status.healthy


MULTI_SOURCES = [
    {"repoURL": "https://charts.example.com", "chart": "base", "targetRevision": "1.2.0"},
    {"repoURL": "https://git.example.com/ml/values.git", "targetRevision": "main", "ref": "v"},
    {
        "repoURL": "https://git.example.com/platform/gitops.git",
        "path": "environments/staging/churn",
    },
]


def test_multi_source_revision_is_our_repository_s_not_the_first(kube_api, kube_api_client):
    values = "7" * 40
    kube_api.set_application(
        APP,
        sync="Synced",
        health="Healthy",
        phase="Succeeded",
        sources=MULTI_SOURCES,
        revisions=["1.2.0", values, COMMIT],
    )
    for url in (
        "https://git.example.com/platform/gitops.git",
        "https://GIT.example.com/platform/gitops/",  # Argo CD's own normalisation
        "ssh://git@git.example.com/platform/gitops.git",
        "git@git.example.com:platform/gitops.git",
    ):
        status = ArgoStatusReader(kube_api_client, repo_url=url).get(APP)
        assert (status.revision, status.operation_revision) == (COMMIT, COMMIT), url
    other = ArgoStatusReader(kube_api_client, repo_url="https://git.example.com/else.git").get(APP)
    assert other.revision == "" and "None of the Application's 3 sources" in other.message


def test_single_source_ignores_the_repo_url(kube_api, kube_api_client):
    kube_api.set_application(APP, sync="Synced", revision=COMMIT, health="Healthy")
    status = ArgoStatusReader(kube_api_client, repo_url="https://elsewhere/x.git").get(APP)
    assert status.revision == COMMIT


def test_comparison_error_condition_is_reported(kube_api, reader):
    kube_api.set_application(
        APP,
        sync="Unknown",
        revision=OLD_COMMIT,
        health="Healthy",
        conditions=[{"type": "ComparisonError", "message": "kustomize build failed"}],
    )
    assert reader.get(APP).message == "ComparisonError: kustomize build failed"


def test_missing_application(kube_api, reader):
    status = reader.get("nobody-staging")
    assert not status.exists and status.sync_status == ""


def test_application_in_another_namespace_is_not_seen(kube_api, kube_api_client):
    kube_api.set_application(APP, namespace="team-argocd", sync="Synced", health="Healthy")
    assert not ArgoStatusReader(kube_api_client, namespace="argocd").get(APP).exists
    assert ArgoStatusReader(kube_api_client, namespace="team-argocd").get(APP).exists


def test_the_client_sends_the_token_and_reads_the_cr_path(kube_api, reader):
    kube_api.set_application(APP, sync="Synced", health="Healthy")
    reader.get(APP)
    request = kube_api.requests[-1]
    assert request.headers.get("Authorization") == f"Bearer {TOKEN}"
    assert request.url.path == f"/apis/argoproj.io/v1alpha1/namespaces/argocd/applications/{APP}"


def test_forbidden_is_a_cluster_error_not_a_missing_app(kube_api, reader):
    kube_api._in_loop(lambda: kube_api.emulator["get", kmock.name(APP)] << 403)
    with pytest.raises(ClusterError) as caught:
        reader.get(APP)
    assert not isinstance(caught.value, ClusterUnavailable)
    assert "403" in str(caught.value)


def test_server_errors_are_retryable(kube_api, reader):
    kube_api._in_loop(lambda: kube_api.emulator["get", kmock.name(APP)] << 503)
    with pytest.raises(ClusterUnavailable):
        reader.get(APP)


def test_unreachable_api_is_cluster_unavailable():
    api_client = build_api_client(url=f"http://127.0.0.1:{free_port()}", token="t")
    with pytest.raises(ClusterUnavailable):
        ArgoStatusReader(api_client, timeout=2).get(APP)


def test_an_api_that_never_answers_times_out(silent_port):
    api_client = build_api_client(url=f"http://127.0.0.1:{silent_port}")
    with pytest.raises(ClusterUnavailable):
        ArgoStatusReader(api_client, timeout=0.5).get(APP)


def test_kubeconfig_file(kube_api, tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "test",
                "clusters": [{"name": "double", "cluster": {"server": kube_api.url}}],
                "users": [{"name": "slipway", "user": {"token": "from-kubeconfig"}}],
                "contexts": [{"name": "test", "context": {"cluster": "double", "user": "slipway"}}],
            }
        )
    )
    kube_api.set_application(APP, sync="Synced", health="Healthy")
    api_client = build_api_client(kubeconfig=str(kubeconfig))
    assert ArgoStatusReader(api_client).get(APP).synced
    assert kube_api.requests[-1].headers.get("Authorization") == "Bearer from-kubeconfig"


def test_no_cluster_configured_outside_a_cluster(monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ClusterError, match="No cluster configured"):
        build_api_client()


def test_reader_from_settings(kube_api, settings):
    settings.KUBE_API_URL = kube_api.url
    settings.KUBE_TOKEN = "settings-token"
    settings.ARGOCD_NAMESPACE = "argocd"
    kube_api.set_application(APP, sync="Synced", health="Healthy", revision=COMMIT)
    settings.GITOPS_REPO_URL = "https://git.example.com/platform/gitops.git"
    reader = ArgoStatusReader.from_settings()
    try:
        assert reader.get(APP).revision == COMMIT
        assert reader.repo_url == settings.GITOPS_REPO_URL
    finally:
        reader.close()


# --- refresh through Argo CD's REST API ------------------------------------------------
class FakeArgoCD:
    """A tiny HTTP server answering GET /api/v1/applications/<name>."""

    def __init__(self) -> None:
        self.calls: list[dict] = []
        self.status = 200
        self.delay = 0.0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                parts = urlsplit(self.path)
                outer.calls.append(
                    {
                        "path": parts.path,
                        "query": parse_qs(parts.query),
                        "authorization": self.headers.get("Authorization"),
                    }
                )
                if outer.delay:
                    # A slow API server is the behaviour under test, not a wait for state.
                    threading.Event().wait(outer.delay)
                body = json.dumps({"metadata": {"name": parts.path.rsplit("/", 1)[-1]}}).encode()
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # keep test output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def argocd() -> Iterator[FakeArgoCD]:
    server = FakeArgoCD()
    yield server
    server.stop()


def test_refresh_asks_argocd_with_the_bearer_token(argocd):
    refresher = ArgoRefresher(argocd.url, "argo-token", timeout=5)
    assert refresher.refresh(APP) is True
    assert argocd.calls == [
        {
            "path": f"/api/v1/applications/{APP}",
            "query": {"refresh": ["normal"]},
            "authorization": "Bearer argo-token",
        }
    ]


def test_refresh_never_raises_and_never_logs_the_token(argocd, caplog):
    caplog.set_level(logging.DEBUG)
    refresher = ArgoRefresher(argocd.url, "argo-secret-token", timeout=0.5)
    argocd.status = 500
    assert refresher.refresh(APP) is False
    argocd.status, argocd.delay = 200, 2.0
    assert refresher.refresh(APP) is False  # timed out
    assert refresher.refresh("../../settings") is False  # not an Application name
    dead = ArgoRefresher("http://127.0.0.1:9", "argo-secret-token", timeout=1)
    assert dead.refresh(APP) is False
    assert "argo-secret-token" not in caplog.text + repr(refresher) + repr(dead)


def test_refresh_is_skipped_when_not_configured(argocd):
    assert ArgoRefresher("", "t").refresh(APP) is False
    assert ArgoRefresher(argocd.url, "").refresh(APP) is False
    assert argocd.calls == []
