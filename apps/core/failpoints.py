"""Named crash points for fault-injection tests.

``failpoint("deploy.after_push")`` does nothing unless the environment variable
SLIPWAY_FAILPOINTS names that point (comma-separated); then the process kills itself
with SIGKILL right there, as a power cut or an OOM kill would. Tests use it to prove
that a worker dying at any step loses and duplicates nothing. It is off in production:
nothing sets the variable, and the check is one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

_ENV = "SLIPWAY_FAILPOINTS"


def failpoint(name: str) -> None:
    armed = os.environ.get(_ENV)
    if armed and name in {point.strip() for point in armed.split(",")}:
        os.kill(os.getpid(), signal.SIGKILL)
