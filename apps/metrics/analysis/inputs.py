"""What the checks need, as plain values: one window, two revisions, no Prometheus.

The reader builds these from Prometheus; the demo simulator (or a test) can build them
directly. ``None`` means "no series came back", which the checks treat as missing data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from apps.metrics.analysis.checks import Histogram


@dataclass(frozen=True)
class RevisionInputs:
    revision: str
    latency_ms: Histogram | None = None  # bucket bounds in milliseconds
    requests: float | None = None
    errors: float | None = None
    cost: float | None = None  # currency spent over the window
    scores: Histogram | None = None


@dataclass(frozen=True)
class AnalysisInputs:
    candidate: RevisionInputs
    stable: RevisionInputs
    start: datetime
    end: datetime
    agreed: float | None = None  # mirrored requests both answered alike
    compared: float | None = None  # mirrored requests compared
    queries_sent: int = 0

    @property
    def window_seconds(self) -> int:
        return int((self.end - self.start).total_seconds())
