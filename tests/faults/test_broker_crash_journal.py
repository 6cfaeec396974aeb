"""SIGKILL of the embedded (memory-backed) broker under steady load, with and without the
receiver's ack journal.

``emberlake up`` runs broker, receiver, lake writer and query daemon; clients send spans with
unique ids through the OpenTelemetry SDK's exporter. The broker is killed mid-stream with
acknowledged spans the writer has not committed yet (its batches close every 2 s); the
supervisor restarts it and every component. With the journal, the supervisor produces what the
lake lacks into the new broker before the writer starts: every acknowledged span is stored
exactly once. Without it, those spans are gone, which is what the journal is for.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from emberlake.errors import QueryError
from emberlake.loadgen import AckedSpanSender
from emberlake.local import LocalSystem
from emberlake.sendlog import SendLog
from tests.faults.harness import (
    assert_exactly_once,
    process_alive,
    supervised_pid,
    uid_counts_sql,
    wait_until,
)

pytestmark = pytest.mark.integration


def _lake_counts(system: LocalSystem, run: str) -> Counter[str]:
    try:
        rows = system.query(uid_counts_sql(run))["rows"]
    except QueryError:  # no spans table yet
        return Counter()
    return Counter(dict(rows))


def _journal_segments(data: Path) -> list[str]:
    folder = data / "receiver" / "journal"
    return sorted(p.name for p in folder.glob("*")) if folder.is_dir() else []


def _crash_broker_under_load(system: LocalSystem, run: str) -> tuple[SendLog, float]:
    """Send, SIGKILL the broker once spans are being acknowledged, let the supervisor restart
    it, send on for a while; returns the sender's log and when the broker died."""
    sender = AckedSpanSender(
        f"127.0.0.1:{system.grpc_port}", run, batch=20, interval=0.02, timeout=60
    )
    sender.start()
    try:
        # Some spans in the lake already (those are skipped by the replay), more on the way.
        wait_until(lambda: len(_lake_counts(system, run)) >= 100, 60, "the first spans stored")
        wait_until(lambda: sender.log.acked_count() >= 600, 60, "more acknowledgements")
        pid = supervised_pid(system.log_path, "broker")
        assert pid is not None and process_alive(pid), system.logs()
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        wait_until(
            lambda: (supervised_pid(system.log_path, "broker") or pid) != pid,
            60,
            "the supervisor to start a new broker",
        )
        wait_until(
            lambda: any(b.acked and b.started > killed_at + 1 for b in sender.log.batches),
            60,
            "acknowledgements through the new broker",
        )
        after = sender.log.acked_count()
        wait_until(lambda: sender.log.acked_count() >= after + 200, 60, "steady traffic")
    finally:
        sender.stop()
    return sender.log, killed_at


@pytest.mark.parametrize("journal", ["auto", "off"])
def test_embedded_broker_crash_loses_no_acknowledged_span(tmp_path: Path, journal: str) -> None:
    data = tmp_path / "data"
    system = LocalSystem(
        data,
        only=("writer", "queryd", "receiver"),
        extra_env={
            "EMBERLAKE_KAFKA_SESSION_TIMEOUT_MS": "3000",
            # Requests caught by the crash fail fast, so the receiver stops quickly.
            "EMBERLAKE_KAFKA_DELIVERY_TIMEOUT_MS": "3000",
            # Acknowledged spans wait up to 2 s in the broker before the lake has them.
            "EMBERLAKE_LAKE_BATCH_MAX_SECONDS": "2",
            "EMBERLAKE_RECEIVER_JOURNAL": journal,
            "EMBERLAKE_RECEIVER_JOURNAL_SEGMENT_SECONDS": "0.5",
            "EMBERLAKE_RECEIVER_JOURNAL_TRIM_SECONDS": "0.5",
        },
    )
    system.start()
    run = uuid.uuid4().hex[:8]
    try:
        log, killed_at = _crash_broker_under_load(system, run)
        acked = log.acked()
        before = {u for b in log.batches if b.acked and b.ended < killed_at for u in b.uids}
        after = {u for b in log.batches if b.acked and b.started > killed_at for u in b.uids}
        # The spans acknowledged after the restart reach the lake either way.
        wait_until(
            lambda: set(_lake_counts(system, run)) >= after, 60, "the spans sent after it"
        )
        if journal == "off":
            counts = _lake_counts(system, run)
            lost = before - set(counts)
            assert lost, "nothing acknowledged was lost: the crash came when nothing was pending"
            print(f"journal off: {len(lost)} of {len(before)} spans acked before the crash lost")
            return
        counts = wait_until(
            lambda: (c := _lake_counts(system, run)) and set(c) >= acked and c,
            60,
            "every acknowledged span in the lake",
        )
        assert_exactly_once(counts, acked)
        up_log = system.log_path.read_text()
        assert "journal replay into cluster" in up_log, system.logs()
        replay = up_log.split("journal replay into cluster")[1].splitlines()[0]
        print(
            f"journal on: {len(acked)} spans acknowledged ({len(before)} before the crash), "
            f"none lost or duplicated; replay{replay}"
        )
        # Trimming keeps up once the lake has everything: only the newest segments remain.
        wait_until(lambda: len(_journal_segments(data)) <= 3, 30, "the journal to be trimmed")
    finally:
        assert system.stop() == 0, system.logs()
