"""Benchmark: how fast the step controller acts on a verdict (issue #14).

    .venv/bin/python -m bench.rollout_steps [--rollouts 50] [--database-url URL]

Against a real Prometheus (backfilled per-revision series, one good and one bad shape
per model version), a real bare git remote and a throwaway PostgreSQL database, it runs:

1. ``--rollouts`` good canary rollouts, one after another (v1 -> v2 -> ...; each one's
   candidate becomes the next one's stable), each with one 10% step observed for 15
   minutes. Measured: from the controller pass that starts once the step's window has
   closed to the next commit (the promotion) being on the remote;
2. ``--rollouts`` bad candidates (10% errors, p95 x3) over the last good one. Measured:
   from the same pass start to the abort commit on the remote, and from the failing
   verdict being stored (``RolloutStep.judged_at``) to the abort commit.

Prints p50/p95 of each. The controller runs on the metrics poll, so in production add up
to one poll period (``METRICS_POLL_SECONDS``) between a window closing (or a regression
appearing) and the pass that sees it; the figures here are the pass itself: one analysis
(six PromQL queries), the decision, and one commit pushed.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.support import drop_postgres, percentile, setup_django, temporary_postgres

T_END = 1704070800  # 2024-01-01T01:00:00Z
STEP = 15
TIMES = [T_END - 20 * 60 + i * STEP for i in range(20 * 60 // STEP + 1)]
SCORE_BOUNDS = [round(0.1 * i, 1) for i in range(1, 11)]
GOOD = {"ok": 50, "errors": 0, "latency": {0.05: 25, 0.1: 40, 0.25: 48, 0.5: 50, 1.0: 50}}
BAD = {"ok": 45, "errors": 5, "latency": {0.05: 5, 0.1: 15, 0.25: 35, 0.5: 45, 1.0: 50}}
BAD_BASE = 1000  # bad candidates are versions 1001, 1002, ...
PLAN = {"strategy": "canary", "steps": [{"weight": 10, "observe": {"minutes": 15}}]}


def build_openmetrics(good: int, bad: int) -> str:
    from tests.fixtures.prometheus import OpenMetrics

    om = OpenMetrics()
    versions = [(v, GOOD) for v in range(1, good + 2)]
    versions += [(BAD_BASE + v, BAD) for v in range(1, bad + 1)]
    base = {"environment": "prod", "service": "churn-model"}
    for version, shape in versions:
        labels = {**base, "version": str(version)}
        for code, per_step in (("200", shape["ok"]), ("500", shape["errors"])):
            if per_step:
                om.counter(
                    "slipway_requests",
                    {**labels, "code": code},
                    [(t, per_step * i) for i, t in enumerate(TIMES)],
                )
    for version, shape in versions:
        latency = {**shape["latency"], math.inf: shape["latency"][1.0]}
        om.histogram(
            "slipway_request_duration_seconds",
            {**base, "version": str(version)},
            TIMES,
            latency,
            start=10,
        )
    for version, _ in versions:
        om.histogram(
            "slipway_prediction_score",
            {**base, "version": str(version)},
            TIMES,
            {**{b: 5 * (i + 1) for i, b in enumerate(SCORE_BOUNDS)}, math.inf: 50},
            start=10,
        )
    return om.text()


def _remote(workdir: Path) -> str:
    path = workdir / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(path)], check=True)
    return path.as_uri()


def _candidate(people, service, prod, version: int, plan=PLAN):
    from apps.registry.models import ModelVersion
    from apps.releases import services

    model_version, _ = ModelVersion.objects.get_or_create(
        name="churn-model",
        version=version,
        defaults={"run_id": f"run{version}", "source": f"models:/churn-model/{version}"},
    )
    release, _ = services.release_create(
        actor=people["alice"],
        service=service,
        environment=prod,
        model_version=model_version,
        reason=f"bench v{version}",
        rollout=plan,
    )
    return services.release_submit(actor=people["alice"], release=release)


def _head(remote_path: Path) -> str:
    done = subprocess.run(
        ["git", "--git-dir", str(remote_path), "rev-parse", "refs/heads/main"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def run(rollouts: int, workdir: Path) -> dict:
    from apps.gitops.git_writer import GitRemote, GitWriter
    from apps.gitops.locks import repository_lock
    from apps.metrics.services import rollouts_step
    from apps.metrics.sources.promapi import PrometheusClient
    from apps.releases import services
    from apps.releases.deploy import deploy_pending
    from apps.releases.models import Environment, ReleaseState, Rollout, RolloutState
    from tests import factories
    from tests.fixtures.prometheus import PrometheusProcess

    text = build_openmetrics(rollouts, rollouts)
    prometheus = PrometheusProcess(workdir / "prometheus", openmetrics=text)
    url = _remote(workdir)
    remote_path = workdir / "remote.git"
    writer = GitWriter(
        GitRemote(
            url=url,
            branch="main",
            workdir=workdir / "clone",
            author_name="Slipway",
            author_email="slipway@example.com",
            timeout=20,
        ),
        lock=lambda: repository_lock(url, backend="file", lock_dir=workdir / "locks"),
    )
    client = PrometheusClient(prometheus.url, timeout=10)
    start = datetime.fromtimestamp(T_END - 15 * 60, tz=UTC)
    end = datetime.fromtimestamp(T_END, tz=UTC)
    people = {name: factories.make_user(name) for name in ("alice", "otto")}
    Environment.objects.create(name="prod", order=1, is_production=True)
    prod = Environment.objects.get(name="prod")
    service = factories.make_service()
    figures = {"advance": [], "abort": [], "verdict_to_abort": []}
    try:
        first = _candidate(people, service, prod, 1, plan={"strategy": "all-at-once"})
        deploy_pending(writer=writer)
        first.refresh_from_db()
        services.release_mark_live(release=first)
        for version in range(2, rollouts + 2):
            release = _candidate(people, service, prod, version)
            deploy_pending(writer=writer)
            Rollout.objects.filter(release=release).update(step_started_at=start)
            before = _head(remote_path)
            began = time.perf_counter()
            decisions = rollouts_step(now=end, client=client, writer=writer)
            after = _head(remote_path)
            figures["advance"].append(time.perf_counter() - began)
            assert after != before and [d.action for d in decisions] == ["advance"], decisions
            release.refresh_from_db()
            assert release.rollout.state == RolloutState.PROMOTED
            services.release_mark_live(release=release)
        for version in range(BAD_BASE + 1, BAD_BASE + rollouts + 1):
            release = _candidate(people, service, prod, version)
            deploy_pending(writer=writer)
            Rollout.objects.filter(release=release).update(step_started_at=start)
            before = _head(remote_path)
            began = time.perf_counter()
            decisions = rollouts_step(now=end, client=client, writer=writer)
            pushed = time.perf_counter()
            figures["abort"].append(pushed - began)
            assert _head(remote_path) != before and [d.action for d in decisions] == ["abort"]
            rollout = Rollout.objects.get(release=release)
            judged = rollout.steps.get(number=1).judged_at
            figures["verdict_to_abort"].append((rollout.ended_at - judged).total_seconds())
            assert rollout.state == RolloutState.HELD
            release.refresh_from_db()
            assert release.state == ReleaseState.FAILED
    finally:
        client.close()
        writer.close()
        prometheus.stop()
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rollouts", type=int, default=50)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="slipway-bench-rollouts-"))
    temporary = None if args.database_url else temporary_postgres("bench_rollouts")
    database_url = args.database_url or temporary or f"sqlite:///{workdir / 'db.sqlite3'}"
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    setup_django(workdir, database_url, GITOPS_REPO_URL="")
    try:
        figures = run(args.rollouts, workdir)
    finally:
        if temporary:
            drop_postgres(temporary)
        shutil.rmtree(workdir, ignore_errors=True)
    labels = {
        "advance": "window closed -> next commit on the remote",
        "abort": "pass start -> abort commit on the remote",
        "verdict_to_abort": "failing verdict stored -> abort commit recorded",
    }
    print(f"{args.rollouts} rollouts each (os: {os.uname().sysname}):")
    for key, values in figures.items():
        ms = [v * 1000 for v in values]
        print(
            f"  {labels[key]:<48} p50 {percentile(ms, 0.5):7.1f} ms   "
            f"p95 {percentile(ms, 0.95):7.1f} ms   (n={len(ms)})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
