"""Cancelling a running query from another thread: its timeout, or its client going away.

A :class:`Cancellation` is handed to the engine with the query. The engine attaches the DuckDB
connection while it runs; :meth:`Cancellation.cancel` interrupts it (or, before it is attached,
makes the attach refuse), so a query nobody waits for any more stops using the pool thread and
memory at once instead of running to its timeout.
"""

from __future__ import annotations

import threading

import duckdb

from queryd.databases import interrupt


class Cancellation:
    """A one-shot cancel switch for one query, safe to flip from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._con: duckdb.DuckDBPyConnection | None = None
        self.reason: str | None = None

    @property
    def cancelled(self) -> bool:
        return self.reason is not None

    def attach(self, con: duckdb.DuckDBPyConnection) -> bool:
        """Watch ``con`` until :meth:`detach`; False if the query was already cancelled."""
        with self._lock:
            if self.reason is not None:
                return False
            self._con = con
            return True

    def detach(self) -> None:
        with self._lock:
            self._con = None

    def cancel(self, reason: str) -> None:
        """Cancel with ``reason`` (the first reason given wins); interrupt what runs now."""
        with self._lock:
            if self.reason is not None:
                return
            self.reason = reason
            con = self._con
        if con is not None:
            interrupt(con)
