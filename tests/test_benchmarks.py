"""Every benchmark in bench/ runs to the end at a tiny size, in its own process, as a
person would start it.

The benchmarks are not part of the measured test run, but they are how the figures in
docs/benchmarks.md are made; twice a change elsewhere broke one unnoticed (pages that
answered 500 on a fresh checkout without collected static files; an audit baseline that
the audit lock-order guard refused). Here each prints its figure next to its baseline,
so a broken benchmark fails the suite instead of the next person who measures.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.services import need_executable, need_service, postgres_url

ROOT = Path(__file__).resolve().parents[1]

# (module and arguments, text its report always prints when it ran to the end)
CASES = {
    "gitops_commit": (
        ["--releases", "3", "--histories", "50", "--skip", "concurrency,leaks"],
        "ratio slipway/raw",
    ),
    "registry_sync": (["--models", "2", "--versions", "2", "--sqlite"], "first sync of 4 versions"),
    "metrics_poll": (["--services", "10", "--polls", "1"], "all-breach poll, 10 services"),
    "metrics_poll:recording-rules": (
        ["--services", "10", "--polls", "1", "--no-breach", "--recording-rules"],
        "recorded the rules over the data",
    ),
    "audit_throughput": (["--threads", "1,2", "--seconds", "0.3"], "chain of"),
    "rollout_steps": (["--rollouts", "2"], "window closed -> next commit on the remote"),
    "live_pages": (
        ["--pages", "10", "--poll", "2", "--seconds", "1"],
        "fleet fragment, 304",
    ),
    "dashboard_render:fleet": (
        [
            "--case",
            "fleet",
            "--fleet-services",
            "20",
            "--fleet-environments",
            "2",
            "--requests",
            "2",
        ],
        "baseline: all rows",
    ),
    "dashboard_render:dashboard": (
        ["--case", "dashboard", "--samples", "20000", "--services", "3", "--requests", "2"],
        "naive/Slipway",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_benchmark_runs_and_prints_its_figures(case):
    need_service("PostgreSQL", postgres_url() is not None, "start it (see .ci/run)")
    need_executable("prometheus", "prometheus")
    module = case.split(":")[0]
    arguments, expected = CASES[case]
    # The bench configures Django itself, for its own throwaway database: nothing of the
    # test run's settings may reach it.
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "SLIPWAY_VAR_DIR")
    }
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{module}", *arguments],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert expected in output, output[-3000:]
