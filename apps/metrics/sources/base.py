"""The one small interface every metric source implements, and what flows through it.

A source gets the targets (every service live in an environment, as plain values) and an
evaluation time, and returns readings. It raises ``SourceUnavailable`` when what it reads
from is down, slow or answers garbage, and ``MetricsConfigError`` when Slipway's own
configuration is wrong (a PromQL template Prometheus refuses, a forbidden cluster read).
Either way the poll stores nothing from that source for that cycle: no fake zeros.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from django.core.exceptions import ImproperlyConfigured


@dataclass(frozen=True)
class Target:
    """A service with a live release in an environment: what a source needs to know."""

    service: str
    environment: str
    runtime: str
    release_id: int | None = None
    model_version: str = ""  # "churn-model v3", for messages
    model_tags: Mapping[str, str] = field(default_factory=dict)
    score_baseline: Mapping | None = None  # {"le": [...], "counts": [...]}
    config: Mapping = field(default_factory=dict)  # the release's resolved serving config
    live_at: datetime | None = None
    # Effective SLO thresholds (ServiceEnvironment.slo() keys); only the demo simulator
    # looks at them, to place its healthy figures comfortably inside them.
    slo: Mapping[str, float | None] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        return (self.service, self.environment)

    @property
    def instance(self) -> str:
        """The ``app.kubernetes.io/instance`` label on its pods (and the Argo CD app)."""
        return f"{self.service}-{self.environment}"


@dataclass(frozen=True)
class Reading:
    """``metric`` of ``service`` in ``environment`` was ``value`` at ``time``.

    ``window_seconds``: how far back the value looks (a 5-minute rate: 300). SLOs of a new
    release are judged only on readings whose window lies wholly after it went live.
    """

    service: str
    environment: str
    metric: str
    value: float
    time: datetime
    window_seconds: int = 0


class SourceError(Exception):
    """Base of what a source raises; the poll records the message on the source's health."""


class SourceUnavailable(SourceError):
    """The source could not be read this time (down, timeout, garbage): back off, retry."""


class MetricsConfigError(SourceError, ImproperlyConfigured):
    """Slipway's metrics configuration is wrong; the message names the setting to fix."""


class Source(Protocol):
    """A source of readings. The poll reads its sources at the same time, one thread
    each, so ``poll`` must not touch the database (it gets all it needs in ``targets``)
    and keeps its own HTTP session."""

    #: The key of the source's ``SourceHealth`` row ("prometheus", "drift", "cost", "demo").
    name: str
    #: HTTP requests sent by the last ``poll`` (the benchmark shows it stays flat).
    requests_sent: int

    def poll(self, targets: Sequence[Target], *, at: datetime) -> list[Reading]: ...

    def close(self) -> None: ...


def parse_duration(text: str) -> int:
    """Seconds in a Prometheus duration such as ``5m``, ``1h30m`` or ``90s``."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    total, number, i = 0.0, "", 0
    text = (text or "").strip()
    if not text:
        raise ValueError("empty duration")
    while i < len(text):
        char = text[i]
        if char.isdigit():
            number += char
            i += 1
            continue
        unit = "ms" if text.startswith("ms", i) else char
        if not number or unit not in units:
            raise ValueError(f"{text!r} is not a duration like 5m or 1h")
        total += int(number) * units[unit]
        number = ""
        i += len(unit)
    if number:
        raise ValueError(f"{text!r} is not a duration like 5m or 1h (a unit is missing)")
    return int(total)


def targets_by_environment(targets: Sequence[Target]) -> dict[str, list[Target]]:
    grouped: dict[str, list[Target]] = {}
    for target in targets:
        grouped.setdefault(target.environment, []).append(target)
    return grouped
