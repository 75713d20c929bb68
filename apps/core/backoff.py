"""The one retry/backoff formula: exponential, capped, optionally jittered.

Every retry in Slipway (git push, deploy task, MLflow alias retries, failing metric
sources) waits ``base * 2**(attempt-1)`` seconds, never more than ``cap``. Jitter spreads
retries of many workers that failed at the same moment (a remote coming back).
"""

from __future__ import annotations

import random


def backoff_delay(attempt: int, *, base: float, cap: float, jitter: float = 0.0) -> float:
    """Seconds to wait before retry number ``attempt`` (1 for the first retry).

    ``jitter`` is a fraction: 0.5 gives a delay drawn uniformly from [50%, 100%] of the
    exponential value, so retries never come sooner than half the schedule.
    """
    if attempt < 1:
        attempt = 1
    # The exponent is capped so a huge attempt number cannot overflow a float.
    delay = min(cap, base * 2 ** min(attempt - 1, 62))
    if jitter:
        delay *= 1 - jitter * random.random()  # noqa: S311 - spreading retries, not a secret
    return delay
