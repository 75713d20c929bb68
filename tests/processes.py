"""Stopping a server a test started, by its PID, with everything it forked.

Every such server is started with ``start_new_session=True``, so its PID leads a process
group that holds its workers too; stopping the group (never processes found by name)
leaves nothing behind and touches nothing another test run started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess


def stop_process_group(popen: subprocess.Popen, *, grace: float = 10.0) -> None:
    """SIGTERM the group ``popen`` leads, SIGKILL it after ``grace`` seconds; when the
    leader is already gone (e.g. SIGKILLed by a failpoint), SIGKILL what is left of its
    group. Safe to call twice."""
    if popen.poll() is None:
        try:
            os.killpg(popen.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, signal.SIGKILL)
            popen.wait(timeout=10)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(popen.pid, signal.SIGKILL)
