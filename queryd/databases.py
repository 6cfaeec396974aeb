"""DuckDB databases for queries: opened ahead of time, and one for evaluating constants.

Every query gets a fresh in-memory database of its own (views, allowed files and the lock are
per database); opening one costs 15-35 ms, so a few are kept ready.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import duckdb

DuckDBConfig = dict[str, str | bool | int | float | list[str]]


class SpareDatabases:
    """Fresh in-memory DuckDB databases opened ahead of time on a background thread.

    Opening one costs 15-35 ms, a large part of a small query's latency; every query still gets
    a database of its own, locked down after its views are created, and never reused.
    """

    def __init__(self, config: DuckDBConfig, spares: int) -> None:
        self._config = config
        self._ready: queue.SimpleQueue[duckdb.DuckDBPyConnection] = queue.SimpleQueue()
        self._opener = ThreadPoolExecutor(max_workers=1, thread_name_prefix="duckdb-open")
        self._closed = False
        for _ in range(spares):
            self._opener.submit(self._open_one)

    def open(self) -> duckdb.DuckDBPyConnection:
        """A new database, from the spares if one is ready; a replacement is opened behind it."""
        try:
            con = self._ready.get_nowait()
        except queue.Empty:
            con = duckdb.connect(":memory:", config=self._config)
        try:
            self._opener.submit(self._open_one)
        except RuntimeError:  # closed: no more spares
            pass
        return con

    def discard(self, con: duckdb.DuckDBPyConnection) -> None:
        """Close a used database off the caller's path (closing takes a few milliseconds)."""
        try:
            self._opener.submit(con.close)
        except RuntimeError:
            con.close()

    def _open_one(self) -> None:
        if not self._closed:
            self._ready.put(duckdb.connect(":memory:", config=self._config))

    def close(self) -> None:
        self._closed = True
        self._opener.shutdown(wait=True, cancel_futures=True)
        while True:
            try:
                self._ready.get_nowait().close()
            except queue.Empty:
                return


class ConstantEvaluator:
    """Evaluates the constant side of time-window predicates (``now() - INTERVAL 1 HOUR``).

    Uses its own in-memory database with no tables, locked like a query's, in UTC like a
    query's; a value that cannot be computed within a second simply disables pruning.
    """

    def __init__(self) -> None:
        self._con = duckdb.connect(
            ":memory:",
            config={
                "threads": 1,
                "memory_limit": "64MB",
                "autoinstall_known_extensions": False,
                "autoload_known_extensions": False,
            },
        )
        for statement in (
            "SET TimeZone = 'UTC'",
            "SET enable_external_access = false",
            "SET lock_configuration = true",
        ):
            self._con.execute(statement)
        self._lock = threading.Lock()

    def micros(self, expr: Mapping[str, Any], with_zone: bool) -> int | None:
        """The expression as microseconds since the epoch, or None if it cannot be computed."""
        statement = {"error": False, "statements": [{"node": _select_of(expr)}]}
        target = "TIMESTAMPTZ" if with_zone else "TIMESTAMP"
        with self._lock:
            timer = threading.Timer(1.0, interrupt, [self._con])
            timer.start()
            try:
                row = self._con.execute(
                    "SELECT json_deserialize_sql(?::JSON)", [json.dumps(statement)]
                ).fetchone()
                if row is None:
                    return None
                value = self._con.execute(
                    f"SELECT epoch_us(CAST(({row[0]}) AS {target}))"
                ).fetchone()
            except duckdb.Error:
                return None
            finally:
                timer.cancel()
        return None if value is None or value[0] is None else int(value[0])

    def close(self) -> None:
        self._con.close()


def _select_of(expr: Mapping[str, Any]) -> dict[str, Any]:
    """A serialized ``SELECT <expr>`` statement node."""
    return {
        "type": "SELECT_NODE",
        "modifiers": [],
        "cte_map": {"map": []},
        "select_list": [expr],
        "from_table": {"type": "EMPTY", "alias": "", "sample": None},
        "where_clause": None,
        "group_expressions": [],
        "group_sets": [],
        "aggregate_handling": "STANDARD_HANDLING",
        "having": None,
        "sample": None,
        "qualify": None,
    }


def interrupt(con: duckdb.DuckDBPyConnection) -> None:
    """Cancel what the connection runs (from another thread); a closed one is left alone."""
    try:
        con.interrupt()
    except duckdb.Error:  # already closed: the query finished as the timer fired
        pass
