"""A small bounded cache shared by the query daemon's per-query shortcuts.

Holds at most a fixed number of values, dropping the least recently used first, and is safe to
use from the daemon's worker threads. Callers put the tenant in every key that derives from a
tenant's data or requests, so that no tenant is ever answered from, or can time, another's entry.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LruCache(Generic[K, V]):
    """At most ``entries`` values by key, least recently used dropped first; 0 keeps none."""

    def __init__(self, entries: int) -> None:
        self.entries = max(0, entries)
        self._values: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        """The value kept for ``key`` (now the most recently used), or None."""
        with self._lock:
            value = self._values.get(key)
            if value is not None:
                self._values.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        """Keep ``value`` for ``key``, dropping the least recently used beyond the bound."""
        if self.entries == 0:
            return
        with self._lock:
            self._values[key] = value
            self._values.move_to_end(key)
            while len(self._values) > self.entries:
                self._values.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._values)
