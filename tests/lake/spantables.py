"""Span tables and a live appender for layout and compaction tests.

The appender behaves like the lake writer: each batch is appended together with the Kafka offset
property in one transaction, with the partition spec pinned, and re-written from scratch when a
commit loses a race. Every span carries a unique integer id in ``attributes['seq']`` and a
``span_id`` derived from it, so tests can check that every appended row is there exactly once.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path

import pyarrow as pa
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.table.sorting import SortField, SortOrder
from pyiceberg.transforms import DayTransform, IdentityTransform
from pyiceberg.types import (
    DoubleType,
    MapType,
    NestedField,
    StringType,
    TimestamptzType,
)

from lake.layout import pin_partition_spec
from lake.snapshots import expire_snapshots

BASE_TIME = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
SERVICES = ("checkout", "cart", "payments", "frontend", "search")
OFFSET_KEY = "emberlake.offset.cluster1.t.otlp.spans.0"

SPANS_SCHEMA = Schema(
    NestedField(1, "start_time", TimestamptzType(), required=False),
    NestedField(2, "end_time", TimestamptzType(), required=False),
    NestedField(3, "duration_ms", DoubleType(), required=False),
    NestedField(4, "trace_id", StringType(), required=False),
    NestedField(5, "span_id", StringType(), required=False),
    NestedField(6, "parent_span_id", StringType(), required=False),
    NestedField(7, "name", StringType(), required=False),
    NestedField(8, "kind", StringType(), required=False),
    NestedField(9, "status_code", StringType(), required=False),
    NestedField(10, "service_name", StringType(), required=False),
    NestedField(
        11,
        "attributes",
        MapType(12, StringType(), 13, StringType(), value_required=False),
        required=False,
    ),
)

ARROW_SCHEMA = pa.schema(
    [
        pa.field("start_time", pa.timestamp("us", tz="UTC")),
        pa.field("end_time", pa.timestamp("us", tz="UTC")),
        pa.field("duration_ms", pa.float64()),
        pa.field("trace_id", pa.string()),
        pa.field("span_id", pa.string()),
        pa.field("parent_span_id", pa.string()),
        pa.field("name", pa.string()),
        pa.field("kind", pa.string()),
        pa.field("status_code", pa.string()),
        pa.field("service_name", pa.string()),
        pa.field("attributes", pa.map_(pa.string(), pa.string())),
    ]
)


def open_test_catalog(root: Path) -> SqlCatalog:
    root.mkdir(parents=True, exist_ok=True)
    return SqlCatalog(
        "test", uri=f"sqlite:///{root / 'catalog.db'}", warehouse=(root / "wh").as_uri()
    )


def create_spans(catalog: SqlCatalog, tenant: str = "acme") -> Table:
    """A spans table partitioned by day(start_time) and sorted by start_time, like the default."""
    catalog.create_namespace_if_not_exists(tenant)
    return catalog.create_table(
        (tenant, "spans"),
        SPANS_SCHEMA,
        partition_spec=PartitionSpec(PartitionField(1, 1000, DayTransform(), "start_time_day")),
        sort_order=SortOrder(SortField(1, IdentityTransform())),
    )


def span_id_of(seq: int) -> str:
    return f"{seq:016x}"


def span_time(seq: int, per_slot: int = 40, slot_minutes: int = 30) -> dt.datetime:
    """Event time advancing with seq: ``per_slot`` spans share each ``slot_minutes`` slot."""
    return BASE_TIME + dt.timedelta(minutes=slot_minutes * (seq // per_slot), milliseconds=seq)


def span_batch(seqs: range, service: str | None = None) -> pa.Table:
    """Spans with the given sequence numbers (one service per batch when ``service`` is set)."""
    starts = [span_time(s) for s in seqs]
    services = [service or SERVICES[s % len(SERVICES)] for s in seqs]
    return pa.table(
        {
            "start_time": starts,
            "end_time": [
                t + dt.timedelta(milliseconds=5 + s % 90) for s, t in zip(seqs, starts, strict=True)
            ],
            "duration_ms": [float(5 + s % 90) for s in seqs],
            "trace_id": [f"{(s // 4) * 2654435761 % (1 << 128):032x}" for s in seqs],
            "span_id": [span_id_of(s) for s in seqs],
            "parent_span_id": [None if s % 4 == 0 else span_id_of(s - 1) for s in seqs],
            "name": [f"GET /api/{s % 7}" for s in seqs],
            "kind": ["SERVER" if s % 4 == 0 else "CLIENT" for s in seqs],
            "status_code": ["ERROR" if s % 50 == 0 else "OK" for s in seqs],
            "service_name": services,
            "attributes": [[("seq", str(s)), ("http.status_code", "200")] for s in seqs],
        },
        schema=ARROW_SCHEMA,
    )


def append_batch(table: Table, rows: pa.Table, offsets: dict[str, str]) -> int:
    """Append with the offset properties in one transaction, like the writer; returns attempts."""
    for attempt in range(1, 50):
        tx = table.transaction()
        tx.append(rows)
        tx.set_properties(offsets)
        pin_partition_spec(tx)
        try:
            tx.commit_transaction()
            return attempt
        except CommitFailedException:
            # Lost a race (a spec change, or too many concurrent commits): write again.
            table.refresh()
    raise AssertionError("the appender could not commit a batch in 50 attempts")


class LiveAppender(threading.Thread):
    """Appends single-service batches of ``batch`` spans until stopped.

    Like the writer, it expires old snapshots every ``expire_every`` batches: commit cost grows
    with the number of snapshots in the metadata.
    """

    def __init__(
        self,
        table: Table,
        first_seq: int,
        batch: int = 20,
        pause: float = 0.0,
        expire_every: int = 10,
    ) -> None:
        super().__init__(daemon=True)
        self.table = table
        self.next_seq = first_seq
        self.batch = batch
        self.pause = pause
        self.expire_every = expire_every
        self.stop = threading.Event()
        self.committed: list[int] = []
        self.batches = 0
        self.retries = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                seqs = range(self.next_seq, self.next_seq + self.batch)
                service = SERVICES[self.batches % len(SERVICES)]
                offsets = {OFFSET_KEY: str(seqs.stop)}
                self.retries += append_batch(self.table, span_batch(seqs, service), offsets) - 1
                self.committed.extend(seqs)
                self.next_seq = seqs.stop
                self.batches += 1
                if self.expire_every and self.batches % self.expire_every == 0:
                    expire_snapshots(self.table, retain_seconds=5.0, keep_min=10)
                if self.pause:
                    time.sleep(self.pause)
        except BaseException as exc:  # surfaced by finish()
            self.error = exc

    def wait_for_batches(self, n: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self.batches < n:
            assert self.error is None, self.error
            assert time.monotonic() < deadline, f"appender made only {self.batches} batches"
            time.sleep(0.01)

    def finish(self) -> list[int]:
        self.stop.set()
        self.join(timeout=60)
        assert not self.is_alive()
        if self.error is not None:
            raise self.error
        return self.committed


def seqs_in(table: Table) -> list[int]:
    """Sequence numbers of every row in the table's current snapshot (duplicates kept)."""
    table.refresh()
    attrs = table.scan(selected_fields=("attributes",)).to_arrow().column("attributes")
    return [int(dict(m)["seq"]) for m in attrs.to_pylist()]
