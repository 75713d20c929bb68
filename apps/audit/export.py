"""CSV export of audit events, streamed so a large log does not sit in memory."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator

COLUMNS = [
    "id",
    "created_at",
    "actor",
    "action",
    "target_type",
    "target_id",
    "before",
    "after",
    "request_id",
    "prev_hash",
    "hash",
]
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


class _Echo:
    def write(self, value):
        return value


def _cell(value) -> str:
    """Neutralise spreadsheet formulas: a reason like '=HYPERLINK(...)' stays text."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return "'" + text if text.startswith(_FORMULA_PREFIXES) else text


def audit_csv_rows(events: Iterable) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(COLUMNS)
    for e in events:
        yield writer.writerow(
            [
                e.id,
                e.created_at.isoformat(),
                _cell(e.actor_label),
                e.action,
                e.target_type,
                _cell(e.target_id),
                _cell(e.before),
                _cell(e.after),
                e.request_id,
                e.prev_hash,
                e.hash,
            ]
        )
