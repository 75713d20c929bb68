"""What the metrics writers share: how many rows one bulk INSERT carries, the same for
samples, latest values, SLO states and roll-ups (poll, slo and rollups all write)."""

from __future__ import annotations

WRITE_BATCH = 5000
