"""Simultaneous requests through a real server process: gunicorn as the image runs it
(deploy/gunicorn.conf.py, gthread workers), on the test database.

20 approve requests at once for one release (several reviewers, each sending several
times, as a double click or a retrying CI job would), and separately 20 rollback requests
at once (two on-call people hammering the button): each person's approval is counted
once, the release is approved once, one rollback is made, one deploy is queued, and
after draining the queue there is exactly one commit.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
import requests

from apps.audit.models import AuditEvent
from apps.audit.selectors import audit_chain_verify
from apps.releases import services
from apps.releases.deploy import deploy_pending
from apps.releases.models import Approval, Release, ReleaseKind, ReleaseState
from tests import factories
from tests.fixtures.network import free_port
from tests.hardening.support import PYTHON, Process, child_env, redis_db
from tests.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

REQUESTS = 20


@pytest.fixture
def server(transactional_db, broker, processes, tmp_path):
    """gunicorn with 3 workers x 8 threads on a free port; its base URL."""
    port = free_port()
    env = child_env(
        tmp_path,
        CELERY_BROKER_URL="redis://127.0.0.1:6379/14",
        PORT=str(port),
        GUNICORN_WORKERS="3",
        GUNICORN_THREADS="8",
        GUNICORN_WORKER_TMP_DIR=str(tmp_path),
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prometheus"),
        LOG_LEVEL="WARNING",
    )
    process = Process(
        [PYTHON, "-m", "gunicorn", "--config", "deploy/gunicorn.conf.py"],
        env=env,
        log=tmp_path / "gunicorn.log",
    )
    processes.append(process)
    base = f"http://127.0.0.1:{port}"

    def up():
        assert process.alive(), process.output()
        try:
            return requests.get(f"{base}/healthz", timeout=2).status_code == 200
        except requests.RequestException:  # refused or slow while it boots: not up yet
            return False

    wait_until(up, timeout=60, interval=0.2, message="gunicorn to answer")
    return base


def _fire(calls):
    """Send every (url, token, body) at the same instant, each on its own thread."""
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def send(i, url, token, body):
        barrier.wait()
        try:
            response = requests.post(
                url, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=60
            )
            results[i] = response.status_code
        except requests.RequestException as exc:  # shown in the assertion
            results[i] = repr(exc)

    threads = [threading.Thread(target=send, args=(i, *c)) for i, c in enumerate(calls)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, time.monotonic() - started


def _deploy_messages() -> int:
    return sum(1 for m in redis_db().lrange("celery", 0, -1) if b"releases.deploy_pending" in m)


def _drain_and_count(release, gitops_remote, make_git_writer) -> list[str]:
    deploy_pending(writer=make_git_writer(gitops_remote.url))
    deploy_pending(writer=make_git_writer(gitops_remote.url, name="second"))  # redelivered
    return gitops_remote.commits_with_trailer("Release-Id", str(release.uid))


def test_twenty_simultaneous_approvals_count_each_person_once_and_commit_once(
    server, people, environments, service, token_for, gitops_remote, make_git_writer
):
    staging, _prod = environments
    alice = people["alice"]
    promotion = factories.pending_promotion(service, staging, requester=alice)
    assert promotion.state == ReleaseState.PENDING_APPROVAL
    redis_db().delete("celery")

    reviewers = ["pat", "paula", "carol", "dual", "alice"]  # alice requested it: refused
    url = f"{server}/api/v1/releases/{promotion.pk}/approve/"
    calls = [
        (url, token_for(reviewers[i % len(reviewers)]), {"comment": f"ok {i}"})
        for i in range(REQUESTS)
    ]
    statuses, took = _fire(calls)

    assert all(isinstance(s, int) and s < 500 for s in statuses), statuses
    assert Counter(statuses)[200] >= 2, statuses
    approvals = list(
        Approval.objects.filter(release=promotion).values_list("approver__username", "role")
    )
    by_person = Counter(name for name, _ in approvals)
    assert all(count == 1 for count in by_person.values()), approvals
    assert "alice" not in by_person
    assert sorted(role for _, role in approvals) == ["compliance-reviewer", "product-reviewer"]
    promotion.refresh_from_db()
    assert promotion.state == ReleaseState.APPROVED
    approved_events = AuditEvent.objects.filter(
        action="release.approved", target_id=str(promotion.pk)
    )
    assert approved_events.count() == 1
    assert _deploy_messages() == 1  # one deploy queued, by the approval that met the policy
    assert _drain_and_count(promotion, gitops_remote, make_git_writer) == [
        Release.objects.get(pk=promotion.pk).commit_sha
    ]
    assert audit_chain_verify()[1] is None
    print(f"\n{REQUESTS} simultaneous approvals in {took:.2f} s: {dict(Counter(statuses))}")


def test_twenty_simultaneous_rollbacks_make_one_rollback_and_one_commit(
    server, people, environments, service, token_for, gitops_remote, make_git_writer
):
    staging, _prod = environments
    alice = people["alice"]
    factories.live_release(service, staging, 1, requester=alice)
    bad = factories.live_release(service, staging, 2, requester=alice)
    redis_db().delete("celery")

    url = f"{server}/api/v1/releases/{bad.pk}/rollback/"
    calls = [
        (url, token_for("otto" if i % 2 else "ada"), {"reason": f"p95 doubled ({i})"})
        for i in range(REQUESTS)
    ]
    statuses, took = _fire(calls)

    assert Counter(statuses) == {201: 1, 409: REQUESTS - 1}, statuses
    rollbacks = Release.objects.filter(kind=ReleaseKind.ROLLBACK)
    assert rollbacks.count() == 1
    rollback = rollbacks.get()
    assert rollback.state == ReleaseState.APPROVED and rollback.break_glass
    assert _deploy_messages() == 1
    assert _drain_and_count(rollback, gitops_remote, make_git_writer) == [
        Release.objects.get(pk=rollback.pk).commit_sha
    ]
    assert audit_chain_verify()[1] is None
    print(f"\n{REQUESTS} simultaneous rollbacks in {took:.2f} s: {dict(Counter(statuses))}")


LOAD_SECONDS = 10
LOAD_CLIENTS = 8


def test_sustained_mixed_load_holds_without_errors(
    server, people, environments, service, model_versions, token_for
):
    """LOAD_CLIENTS clients for LOAD_SECONDS: lists, details, creates and submits through
    gunicorn. Nothing fails with a 5xx or a dropped connection; p95 stays low."""
    staging, _prod = environments
    alice = people["alice"]
    factories.live_release(service, staging, 1, requester=alice)
    for mv in model_versions:
        services.release_create(actor=alice, service=service, environment=staging, model_version=mv)
    ids = list(Release.objects.values_list("pk", flat=True))
    headers = {"Authorization": f"Bearer {token_for('alice')}"}
    deadline = time.monotonic() + LOAD_SECONDS
    latencies: list[float] = []
    outcomes: Counter = Counter()
    lock = threading.Lock()

    def client(n):
        session = requests.Session()
        session.headers.update(headers)
        i = 0
        while time.monotonic() < deadline:
            i += 1
            kind = i % 10
            started = time.monotonic()
            try:
                if kind < 5:
                    r = session.get(f"{server}/api/v1/releases/?limit=50", timeout=30)
                elif kind < 9:
                    r = session.get(f"{server}/api/v1/releases/{ids[i % len(ids)]}/", timeout=30)
                else:
                    body = {"service": service.name, "environment": "staging", "model_version": 2}
                    r = session.post(f"{server}/api/v1/releases/", json=body, timeout=30)
                    if r.status_code == 201:
                        r = session.post(
                            f"{server}/api/v1/releases/{r.json()['id']}/submit/", timeout=30
                        )
                status = r.status_code
            except requests.RequestException as exc:
                status = type(exc).__name__
            with lock:
                latencies.append(time.monotonic() - started)
                outcomes[status] += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(LOAD_CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    latencies.sort()
    p95 = latencies[int(len(latencies) * 0.95)]
    bad = {k: v for k, v in outcomes.items() if not isinstance(k, int) or k >= 500}
    assert not bad, outcomes
    assert set(outcomes) <= {200, 201}, outcomes
    assert p95 < 5.0, p95  # generous: CI machines are small and busy
    assert audit_chain_verify()[1] is None
    p50 = latencies[len(latencies) // 2]
    print(
        f"\nload: {LOAD_CLIENTS} clients x {LOAD_SECONDS} s: {len(latencies)} requests "
        f"({len(latencies) / LOAD_SECONDS:.0f}/s), p50 {p50 * 1000:.0f} ms, "
        f"p95 {p95 * 1000:.0f} ms, outcomes {dict(outcomes)}"
    )
