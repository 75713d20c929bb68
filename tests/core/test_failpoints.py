"""apps/core/failpoints.py: an armed point kills the process with SIGKILL, as a power cut
or an OOM kill would; unarmed (production: nothing sets the variable) it does nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHILD = (
    "from apps.core.failpoints import failpoint\n"
    "print('before', flush=True)\n"
    "failpoint('deploy.after_push')\n"
    "print('after', flush=True)\n"
)


def run_child(armed: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SLIPWAY_FAILPOINTS"}
    if armed is not None:
        env["SLIPWAY_FAILPOINTS"] = armed
    return subprocess.run(
        [sys.executable, "-c", CHILD],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    "armed", ["deploy.after_push", "git.before_push, deploy.after_push", " deploy.after_push "]
)
def test_an_armed_point_dies_by_sigkill_right_there(armed):
    done = run_child(armed)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert done.stdout == "before\n"


@pytest.mark.parametrize("armed", [None, "", "deploy.before_push", "deploy.after_push.x"])
def test_an_unarmed_point_does_nothing(armed):
    done = run_child(armed)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "before\nafter\n"
