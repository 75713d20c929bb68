"""32 parallel deploy lanes through the real stack: no deadlock, no 5xx, right end states.

Measured before the lock order (docs/reliability.md, "Lock order"): 10 lanes of create ->
submit -> approve -> live over services sharing one MLflow registered model made 33
PostgreSQL deadlocks in about 2 minutes (500s on create and submit, failed status polls
and ``registry.set_alias`` tasks). Here LANES lanes, each its own service, all on the one
registered model ``churn-model`` (so every go-live moves the same MLflow alias), drive
the HTTP API of a real gunicorn; two real Celery workers on Redis (one with the beat that
runs the status poll every second) deploy to a bare git remote and set the alias in a
real MLflow store; Argo CD is the Kubernetes API double, which this test answers
Synced+Healthy for each commit as it reaches the remote.

Each lane goes live ROUNDS times (staging approves on submit), so every release but the
last of a lane is superseded and alias updates race each other. At the end: 0 deadlocks
(pg_stat_database of the test database, and the processes' logs), 0 5xx, every release
and alias update in its final state, MLflow's alias on the newest requested version, and
the audit chain verifying. The figures are printed.

What this test is and is not: a load test of the whole stack under the lock order. The
cycle's window is a few milliseconds wide, and with the old order restored (chain lock
taken by ``audit_record``) one run of this test still passed: the proof that the cycle is
gone is the deterministic replay in tests/audit/test_lock_order.py, which deadlocks with
the old order. This test guards everything around it (no 5xx, states, aliases, chain).
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
import requests
from django.db import connection

from apps.audit.models import AuditEvent
from apps.audit.selectors import audit_chain_verify
from apps.registry.models import ALIAS_UPDATE_FINAL_STATES, AliasUpdate, AliasUpdateState
from apps.releases.models import Release, ReleaseState
from tests import factories
from tests.hardening.support import worker_env
from tests.hardening.test_concurrency import server  # noqa: F401  (the gunicorn fixture)
from tests.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

LANES = 32
ROUNDS = 2
MODEL = "churn-model"
BUDGET_SECONDS = 120  # the whole drive, lanes and settling, must fit in this


def _deadlocks() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        return cursor.fetchone()[0]


def _answer_argo(kube_api, reported: set[str]) -> None:
    """Play Argo CD: report every commit on the remote as synced and healthy."""
    for name, sha in (
        Release.objects.filter(state=ReleaseState.DEPLOYING)
        .exclude(commit_sha="")
        .values_list("service__name", "commit_sha")
    ):
        if sha not in reported:
            kube_api.set_application(
                f"{name}-staging", sync="Synced", revision=sha, health="Healthy"
            )
            reported.add(sha)


def test_thirty_two_lanes_sharing_a_model_never_deadlock(
    server,  # noqa: F811
    people,
    environments,
    token_for,
    gitops_remote,
    kube_api,
    mlflow_store,
    broker,
    start_worker,
    processes,
):
    del environments  # staging (approved on submit) must exist
    for version in (1, 2, 3):
        factories.make_model_version(MODEL, version)
    names = [f"lane-{i:02d}" for i in range(LANES)]
    for name in names:
        factories.make_service(name, registered_model=MODEL)
    env = {**worker_env(gitops_remote, kube_api), "MLFLOW_TRACKING_URI": mlflow_store.uri}
    workers = [start_worker("lanes-a", beat=True, **env), start_worker("lanes-b", **env)]
    token = token_for("alice")
    deadlocks_before = _deadlocks()
    audit_before = AuditEvent.objects.count()

    statuses: Counter = Counter()
    failures: list[str] = []
    guard = threading.Lock()
    started = time.monotonic()
    deadline = started + BUDGET_SECONDS

    def lane(i: int) -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        try:
            for r in range(ROUNDS):
                version = 1 + (i + r) % 3
                body = {"service": names[i], "environment": "staging", "model_version": version}
                made = session.post(f"{server}/api/v1/releases/", json=body, timeout=60)
                with guard:
                    statuses[made.status_code] += 1
                if made.status_code != 201:
                    raise AssertionError(f"create {names[i]}: {made.status_code} {made.text}")
                release_id = made.json()["id"]
                sent = session.post(f"{server}/api/v1/releases/{release_id}/submit/", timeout=60)
                with guard:
                    statuses[sent.status_code] += 1
                if sent.status_code != 200:
                    raise AssertionError(f"submit #{release_id}: {sent.status_code} {sent.text}")
                while True:
                    state = (
                        Release.objects.filter(pk=release_id)
                        .values_list("state", flat=True)
                        .first()
                    )
                    if state == ReleaseState.LIVE:
                        break
                    if state not in (ReleaseState.APPROVED, ReleaseState.DEPLOYING):
                        raise AssertionError(f"release #{release_id} ended {state}")
                    if time.monotonic() > deadline:
                        raise AssertionError(f"release #{release_id} still {state}")
                    time.sleep(0.3)
        except BaseException as exc:  # reported by the main thread
            with guard:
                failures.append(f"lane {i}: {exc}")
        finally:
            session.close()
            connection.close()

    threads = [threading.Thread(target=lane, args=(i,)) for i in range(LANES)]
    for thread in threads:
        thread.start()
    reported: set[str] = set()
    while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
        _answer_argo(kube_api, reported)
        for worker in workers:
            assert worker.alive(), worker.output()
        time.sleep(0.2)
    for thread in threads:
        thread.join(max(1.0, deadline - time.monotonic()))
    lanes_took = time.monotonic() - started
    assert not failures, failures[:5]

    # Alias updates settle: applied by set_alias, or superseded. An attempt that found
    # the alias busy (another worker setting it) is due again 10 s later; production's
    # beat sends the sweep that re-queues it, here the test sends it.
    swept = [0.0]

    def aliases_settled() -> bool:
        if not AliasUpdate.objects.exclude(state__in=ALIAS_UPDATE_FINAL_STATES).exists():
            return True
        if time.monotonic() - swept[0] > 1.0:
            broker.send_task("registry.retry_alias_updates")
            swept[0] = time.monotonic()
        return False

    wait_until(
        aliases_settled,
        timeout=max(5.0, deadline - time.monotonic()),
        interval=0.2,
        message=lambda: (
            "alias updates to settle: "
            + str(Counter(AliasUpdate.objects.values_list("state", flat=True)))
        ),
    )
    took = time.monotonic() - started

    # No deadlock anywhere: the database's counter and the processes' logs.
    logs = [p.output(tail=10_000_000) for p in processes]
    deadlocks = _deadlocks() - deadlocks_before
    assert deadlocks == 0, [line for log in logs for line in log.splitlines() if "eadlock" in line]
    assert not any("deadlock detected" in log for log in logs)
    assert not any(status >= 500 for status in statuses), statuses
    assert statuses == {201: LANES * ROUNDS, 200: LANES * ROUNDS}, statuses

    # Every release in its final state: the last of each lane live, the others superseded.
    for name in names:
        states = list(
            Release.objects.filter(service__name=name)
            .order_by("pk")
            .values_list("state", flat=True)
        )
        assert states == [ReleaseState.SUPERSEDED] * (ROUNDS - 1) + [ReleaseState.LIVE], (
            name,
            states,
        )
    for release in Release.objects.filter(service__name__in=names):
        assert gitops_remote.commits_with_trailer("Release-Id", str(release.uid)) == [
            release.commit_sha
        ]

    # Every alias update final, none failed; MLflow's alias on the newest requested version.
    updates = list(AliasUpdate.objects.order_by("pk").select_related("model_version"))
    assert len(updates) == LANES * ROUNDS
    outcomes = Counter(u.state for u in updates)
    assert set(outcomes) <= {AliasUpdateState.DONE, AliasUpdateState.SUPERSEDED}, outcomes
    newest = updates[-1]
    assert newest.state == AliasUpdateState.DONE
    in_mlflow = mlflow_store.mlflow().get_model_version_by_alias(MODEL, "staging")
    assert int(in_mlflow.version) == newest.model_version.version

    assert audit_chain_verify()[1] is None
    audited = AuditEvent.objects.count() - audit_before
    releases = LANES * ROUNDS
    print(
        f"\n{LANES} lanes x {ROUNDS} go-lives: {releases} releases live or superseded in "
        f"{lanes_took:.1f} s, alias updates settled at {took:.1f} s "
        f"({dict(outcomes)}); {audited} audited writes ({audited / took:.1f}/s); "
        f"{sum(statuses.values())} API writes, 0 x 5xx; deadlocks: {deadlocks}"
    )
