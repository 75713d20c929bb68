"""Values computed from the database once per version key, then reused by every request
in the process until the key changes.

A version key (apps/dashboards/versions.py) changes whenever what a live page shows
changes; a value that depends only on that data (the fleet's ranking over 5,000 targets)
is the same for every request with the same key. 500 open fleet pages then rank the
fleet once per change (a metrics poll, a release moving), not once per poll.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable


class PerVersion:
    """The newest ``size`` values by key (a key starts with its version), computed at most
    once at a time per key: when a change lands, the requests that find no value wait for
    the first one's instead of all running the same queries."""

    def __init__(self, size: int):
        self.size = size
        self.lock = threading.Lock()
        self.values: OrderedDict = OrderedDict()
        self.computing: dict[Hashable, threading.Lock] = {}

    def get(self, key: Hashable, compute: Callable[[], object]):
        with self.lock:
            if key in self.values:
                self.values.move_to_end(key)
                return self.values[key]
            gate = self.computing.setdefault(key, threading.Lock())
        with gate:
            with self.lock:
                if key in self.values:  # another request computed it meanwhile
                    return self.values[key]
            try:
                value = compute()
                with self.lock:
                    self.values[key] = value
                    while len(self.values) > self.size:
                        self.values.popitem(last=False)
            finally:
                with self.lock:
                    self.computing.pop(key, None)
            return value

    def clear(self) -> None:
        with self.lock:
            self.values.clear()
