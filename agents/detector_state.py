"""Durable detector state: windows, baselines, signatures, consumed offsets and an outbox.

Everything the detectors learned is written in ONE SQLite transaction together with the next
offset to read per topic partition, and with the anomalies found (the outbox). After a crash the
detectors load this state and skip every record below the stored offsets, so each record counts
exactly once and no window is lost, whatever the broker's consumer group committed. Anomalies
leave through the outbox: published after the commit, marked sent after the broker confirmed;
one published twice after a crash keeps its id, and consumers dedupe on it.

Offsets are stored per broker cluster id: the embedded broker starts empty with a new id after a
restart, and offsets from its previous life must not hide new records.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from agents.anomalies import Anomaly
from agents.detection.detector import ServiceState
from agents.detection.engine import Changes, WindowKey
from agents.detection.windows import WindowStats

_SCHEMA = """
CREATE TABLE IF NOT EXISTS services (
    signal TEXT, tenant TEXT, service TEXT, state TEXT NOT NULL,
    PRIMARY KEY (signal, tenant, service));
CREATE TABLE IF NOT EXISTS windows (
    signal TEXT, tenant TEXT, service TEXT, start_us INTEGER, stats TEXT NOT NULL,
    PRIMARY KEY (signal, tenant, service, start_us));
CREATE TABLE IF NOT EXISTS signatures (
    tenant TEXT, service TEXT, fingerprint TEXT, first_seen_us INTEGER,
    PRIMARY KEY (tenant, service, fingerprint));
CREATE TABLE IF NOT EXISTS offsets (
    cluster TEXT, topic TEXT, partition INTEGER, next_offset INTEGER NOT NULL,
    PRIMARY KEY (cluster, topic, partition));
CREATE TABLE IF NOT EXISTS outbox (
    id TEXT PRIMARY KEY, tenant TEXT NOT NULL, service TEXT NOT NULL, payload BLOB NOT NULL,
    created REAL NOT NULL, sent REAL);
"""

#: Sent outbox rows are kept this long (they also guard against re-publishing).
OUTBOX_KEEP_SECONDS = 7 * 24 * 3600

TopicPartition = tuple[str, int]


class SQLiteDetectorState:
    """The detectors' state in one SQLite file (``data_dir/detectors/state.db`` by default)."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, isolation_level=None, timeout=30.0)
        self._conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit that returned is on disk, so offsets never run ahead of state.
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        self._conn.close()

    def load(
        self,
    ) -> tuple[
        list[ServiceState], list[tuple[WindowKey, WindowStats]], list[tuple[str, str, str, int]]
    ]:
        services = [
            ServiceState.from_dict(tenant, service, signal, json.loads(state))
            for signal, tenant, service, state in self._conn.execute(
                "SELECT signal, tenant, service, state FROM services"
            )
        ]
        windows = [
            ((signal, tenant, service, int(start)), WindowStats.from_dict(json.loads(stats)))
            for signal, tenant, service, start, stats in self._conn.execute(
                "SELECT signal, tenant, service, start_us, stats FROM windows"
            )
        ]
        signatures = [
            (t, s, fp, int(first))
            for t, s, fp, first in self._conn.execute(
                "SELECT tenant, service, fingerprint, first_seen_us FROM signatures"
            )
        ]
        return services, windows, signatures

    def offsets(self, cluster: str) -> dict[TopicPartition, int]:
        rows = self._conn.execute(
            "SELECT topic, partition, next_offset FROM offsets WHERE cluster = ?", (cluster,)
        )
        return {(topic, int(p)): int(o) for topic, p, o in rows}

    def commit(self, changes: Changes, offsets: dict[TopicPartition, int], cluster: str) -> None:
        """Persist what changed, the offsets consumed and new anomalies, atomically."""
        c = self._conn
        c.execute("BEGIN IMMEDIATE")
        try:
            c.executemany(
                "INSERT OR REPLACE INTO services VALUES (?, ?, ?, ?)",
                [
                    (sig, t, svc, json.dumps(st.to_dict(), separators=(",", ":")))
                    for (sig, t, svc), st in changes.services.items()
                ],
            )
            c.executemany(
                "INSERT OR REPLACE INTO windows VALUES (?, ?, ?, ?, ?)",
                [
                    (*key, json.dumps(stats.to_dict(), separators=(",", ":")))
                    for key, stats in changes.windows.items()
                ],
            )
            c.executemany(
                "DELETE FROM windows WHERE signal = ? AND tenant = ? AND service = ?"
                " AND start_us = ?",
                list(changes.closed_windows),
            )
            c.executemany(
                "INSERT OR IGNORE INTO signatures VALUES (?, ?, ?, ?)", changes.signatures
            )
            c.executemany(
                "INSERT OR REPLACE INTO offsets VALUES (?, ?, ?, ?)",
                [(cluster, topic, p, o) for (topic, p), o in offsets.items()],
            )
            now = time.time()
            c.executemany(
                "INSERT OR IGNORE INTO outbox (id, tenant, service, payload, created)"
                " VALUES (?, ?, ?, ?, ?)",
                [(a.id, a.tenant, a.service, a.to_json(), now) for a in changes.anomalies],
            )
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise

    def unsent(self, limit: int = 500) -> list[Anomaly]:
        rows = self._conn.execute(
            "SELECT payload FROM outbox WHERE sent IS NULL ORDER BY created, id LIMIT ?", (limit,)
        )
        return [Anomaly.from_json(payload) for (payload,) in rows]

    def mark_sent(self, ids: list[str]) -> None:
        now = time.time()
        self._conn.execute("BEGIN IMMEDIATE")
        self._conn.executemany("UPDATE outbox SET sent = ? WHERE id = ?", [(now, i) for i in ids])
        self._conn.execute(
            "DELETE FROM outbox WHERE sent IS NOT NULL AND sent < ?", (now - OUTBOX_KEEP_SECONDS,)
        )
        self._conn.execute("COMMIT")

    def outbox_ids(self) -> list[str]:
        """Every anomaly id in the outbox, sent or not (for inspection and tests)."""
        return [i for (i,) in self._conn.execute("SELECT id FROM outbox ORDER BY created, id")]
