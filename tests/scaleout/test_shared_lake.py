"""The scaled-out deployment's code paths, each component its own process: OTLP in through the
receiver, two lake writers in one consumer group committing to the same tables of a PostgreSQL
catalog over an S3 warehouse (moto), and the query daemon reading the S3 files back."""

from __future__ import annotations

import re
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from emberlake.loadgen import AckedSpanSender
from emberlake.settings import Settings
from ingest.kafka import ensure_emberlake_topics
from lake.catalog import open_catalog
from queryd.client import QueryClient
from tests.faults.harness import (
    Component,
    assert_exactly_once,
    lake_uid_counts,
    uid_counts_sql,
    wait_until,
)

pytestmark = pytest.mark.integration


def _writer(settings: Settings, log: Path) -> Component:
    return Component(settings, ["writer", "--drain-seconds", "5"], log).start()


def _committed_rows(log: str) -> int:
    found = re.findall(r"lake writer stopped after (\d+) rows", log)
    return int(found[-1]) if found else -1


def test_two_writers_on_s3_and_postgres_exactly_once_through_queryd(
    shared_lake: Settings, tmp_path: Path
) -> None:
    settings = shared_lake
    ensure_emberlake_topics(settings)
    receiver = Component(settings, ["receiver"], tmp_path / "receiver.log").start()
    queryd = Component(settings, ["queryd"], tmp_path / "queryd.log").start()
    one = _writer(settings, tmp_path / "writer-1.log")
    two = _writer(settings, tmp_path / "writer-2.log")
    receiver.wait_port(settings.receiver.grpc_port)
    run = uuid.uuid4().hex[:8]
    sender = AckedSpanSender(
        f"127.0.0.1:{settings.receiver.grpc_port}", run, batch=25, interval=0.02, services=8
    ).start()
    replacement: Component | None = None
    try:
        # Both writers commit, then one dies mid-stream: its partitions go to the other and,
        # once it is back, are shared again, with no record lost or written twice.
        wait_until(lambda: sender.log.acked_count() >= 500, 60, "acknowledged spans")
        time.sleep(2.0)
        one.kill()
        replacement = _writer(settings, tmp_path / "writer-3.log")
        acked = sender.log.acked_count()
        wait_until(lambda: sender.log.acked_count() >= acked + 1000, 60, "more spans after kill")
        wait_until(
            lambda: "assigned [(" in replacement.log(100_000), 60, "the new writer's partitions"
        )
        time.sleep(2.0)
    finally:
        sender.stop()
    acked_uids = sender.log.acked()
    assert len(acked_uids) == len(sender.log.sent()), "the receiver was up: all should be acked"

    client = QueryClient(f"http://127.0.0.1:{settings.queryd.port}")
    queryd.wait_port(settings.queryd.port)

    def all_visible() -> bool:
        try:
            rows = client.query(uid_counts_sql(run))["rows"]
        except Exception:  # noqa: BLE001 - tables may not exist yet
            return False
        return {uid for uid, _ in rows} >= acked_uids

    wait_until(all_visible, 90, "every acknowledged span visible through queryd", 0.5)
    rows = client.query(uid_counts_sql(run))["rows"]
    assert_exactly_once(Counter(dict(rows)), acked_uids)
    # The same answer straight from the catalog (PostgreSQL) and the S3 files.
    assert_exactly_once(lake_uid_counts(settings, ["default.spans"]), acked_uids)

    logs = {}
    for name, writer in (("two", two), ("three", replacement)):
        assert writer is not None
        assert writer.stop() == 0, writer.log()
        logs[name] = writer.log(1_000_000)
    assert receiver.stop() == 0, receiver.log()
    assert queryd.stop() == 0, queryd.log()
    # Both surviving writers committed rows of their own partitions.
    assert _committed_rows(logs["two"]) > 0, logs["two"][-2000:]
    assert _committed_rows(logs["three"]) > 0, logs["three"][-2000:]
    for text in logs.values():
        assert "Traceback" not in text, text[-3000:]
    table = open_catalog(settings).load_table("default.spans")
    assert table.location().startswith("s3://")
    offsets = [k for k in table.properties if k.startswith("emberlake.offset.")]
    assert len(offsets) >= 2
