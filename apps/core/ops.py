"""What each app contributes to the ops endpoints: readiness checks and metric collectors.

``/readyz`` and ``/metrics`` (controlplane/readiness.py, controlplane/prometheus.py) are
wiring: they must not import the domain apps whose state they report, or controlplane
would sit both above and below the apps (an import loop ran between readiness and
gitops). Instead each app registers what it knows from its own ``ops.py`` in its
``AppConfig.ready()``, and the endpoints read this registry.

Order is registration order, so INSTALLED_APPS order: the readiness endpoint lists its
checks (and runs ``?checks=`` subsets) in that order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

# Slipway's own metric names. The model servers Slipway deploys export slipway_requests_*
# (apps/metrics/conf.py), often into the same Prometheus; the two must never mix.
METRICS_PREFIX = "slipway_controlplane"
_MAX_REASON = 200


@dataclass(frozen=True)
class CheckResult:
    """One readiness check's verdict; ``detail`` is shown on an unauthenticated page."""

    ok: bool
    detail: str
    duration_ms: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "status": "ok" if self.ok else "failed",
            "detail": self.detail,
            "duration_ms": self.duration_ms,
        }


# A check takes its time budget in seconds and must bound itself by it.
ReadinessCheck = Callable[[float], CheckResult]
# A collector yields prometheus_client metric families, read at scrape time.
MetricsCollector = Callable[[], Iterable[object]]


@dataclass(frozen=True)
class RegisteredCheck:
    name: str
    check: ReadinessCheck
    on_calling_thread: bool


_checks: dict[str, RegisteredCheck] = {}
_collectors: dict[str, MetricsCollector] = {}


def register_readiness_check(
    name: str, check: ReadinessCheck, *, on_calling_thread: bool = False
) -> None:
    """Add ``check`` to ``/readyz`` under ``name``.

    Checks run in parallel threads; ``on_calling_thread`` keeps one on the request's own
    thread (the database check: a Django connection belongs to its thread, and a probe
    thread's connection would never be reused or closed). Registering a name again
    replaces the check in place (``ready()`` may run twice in tests).
    """
    _checks[name] = RegisteredCheck(name, check, on_calling_thread)


def readiness_checks() -> dict[str, RegisteredCheck]:
    """Every registered check by name, in registration order."""
    return dict(_checks)


def register_metrics_collector(part: str, collector: MetricsCollector) -> None:
    """Add ``collector``'s families to every ``/metrics`` scrape. ``part`` names it in
    ``slipway_controlplane_state_collect_ok{part=...}``, which says whether it could be
    read. Registering a part again replaces it in place."""
    _collectors[part] = collector


def metrics_collectors() -> dict[str, MetricsCollector]:
    """Every registered collector by part, in registration order."""
    return dict(_collectors)


def short_reason(text: object) -> str:
    """One line, at most 200 characters: enough to act on, too short to leak much."""
    line = " ".join(str(text).split())
    return line if len(line) <= _MAX_REASON else line[: _MAX_REASON - 1] + "…"
