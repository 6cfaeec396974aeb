"""The SQLite resource store: one file, WAL mode, one transaction per unit of work.

Each transaction opens its own connection (cheap for SQLite), so the store can be used from any
thread; ``BEGIN IMMEDIATE`` takes the write lock up front, which serialises read-check-write
sequences such as an etag check followed by an update. Readers are not blocked (WAL).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS resources (
    name TEXT PRIMARY KEY,
    parent TEXT NOT NULL,
    collection TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS resources_by_parent ON resources (parent, collection);
-- Active investigations are a few among many closed ones: the intake asks for them by state.
CREATE INDEX IF NOT EXISTS resources_by_state
    ON resources (parent, collection, json_extract(body, '$.state'));
"""


def connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode with WAL and a generous busy timeout."""
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


class SQLiteTransaction:
    """Resource reads and writes on one open SQLite transaction."""

    def __init__(self, conn: sqlite3.Connection):
        self._conn = conn

    def get(self, name: str) -> dict[str, Any] | None:
        row = self._conn.execute("SELECT body FROM resources WHERE name = ?", (name,)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def put(self, name: str, parent: str, collection: str, resource: dict[str, Any]) -> None:
        self._conn.execute(
            "INSERT INTO resources (name, parent, collection, body) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(name) DO UPDATE SET body = excluded.body",
            (name, parent, collection, json.dumps(resource, separators=(",", ":"))),
        )

    def delete(self, name: str) -> None:
        self._conn.execute("DELETE FROM resources WHERE name = ?", (name,))

    def children(
        self, parent: str, collection: str, state_in: Collection[str] | None = None
    ) -> list[dict[str, Any]]:
        if state_in is None:
            rows = self._conn.execute(
                "SELECT body FROM resources WHERE parent = ? AND collection = ?",
                (parent, collection),
            )
        else:
            states = sorted(state_in)
            marks = ", ".join("?" * len(states))
            rows = self._conn.execute(
                "SELECT body FROM resources WHERE parent = ? AND collection = ?"
                f" AND json_extract(body, '$.state') IN ({marks})",
                (parent, collection, *states),
            )
        return [dict(json.loads(body)) for (body,) in rows]

    def has_children(self, parent: str) -> bool:
        row = self._conn.execute(
            "SELECT 1 FROM resources WHERE parent = ? LIMIT 1", (parent,)
        ).fetchone()
        return row is not None

    def delete_children(self, parent: str) -> int:
        # Children's children too: every name below parent/.
        cur = self._conn.execute(
            "DELETE FROM resources WHERE parent = ? OR parent LIKE ? ESCAPE '\\'",
            (parent, parent.replace("%", "\\%").replace("_", "\\_") + "/%"),
        )
        return int(cur.rowcount)


class SQLiteResourceStore:
    """Resources in one SQLite file (created with its folder on first use)."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = connect(path)
        try:
            conn.executescript(_SCHEMA)
        finally:
            conn.close()

    @contextmanager
    def transaction(self) -> Iterator[SQLiteTransaction]:
        conn = connect(self.path)
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield SQLiteTransaction(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()

    def close(self) -> None:
        return None
