"""Span tables and a live writer for layout and compaction tests.

Tables are created the way the lake writer creates them (``lake.tables.ensure_table``: day
partitions, sorted by service then time) and appended to with the real
:class:`~lake.writer.IcebergWriter`: rows and the Kafka offset property in one commit, the
partition spec pinned, snapshots expired every few commits. Every span carries a unique integer
id in ``attributes['seq']`` and a ``span_id`` derived from it, so tests can check that every
appended row is there exactly once.
"""

from __future__ import annotations

import datetime as dt
import threading
import time

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.table import Table

from emberlake.errors import CommitConflict, LakeError
from lake.maintenance import SnapshotExpiry
from lake.offsets import offset_property
from lake.tables import ensure_table
from lake.writer import IcebergWriter, TableAppend

BASE_TIME = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
SERVICES = ("checkout", "cart", "payments", "frontend", "search")
OFFSET_KEY = offset_property("cluster1", "t.otlp.spans", 0)

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


def create_spans(catalog: Catalog, tenant: str = "acme") -> Table:
    """The tenant's spans table, as the lake writer creates it."""
    return ensure_table(catalog, tenant, "spans")


def span_id_of(seq: int) -> str:
    return f"{seq:016x}"


def span_time(seq: int) -> dt.datetime:
    """Event time advancing with seq: 20 spans an hour (a batch of 20 fills one hour)."""
    return BASE_TIME + dt.timedelta(hours=seq // 20, milliseconds=seq)


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


class SpanAppender:
    """Appends span batches through the lake's IcebergWriter, advancing one offset property."""

    def __init__(self, catalog: Catalog, tenant: str = "acme", expire_every: int = 10) -> None:
        expiry = SnapshotExpiry(every=expire_every, retain_seconds=5.0, keep_min=10)
        self.writer = IcebergWriter(catalog, expiry)
        self.tenant = tenant
        self.offset: int | None = None
        self.dropped = 0

    def append(self, rows: pa.Table) -> None:
        nxt = (self.offset or 0) + rows.num_rows
        job = TableAppend(
            self.tenant,
            "spans",
            rows,
            offsets={OFFSET_KEY: nxt},
            expected={OFFSET_KEY: self.offset},
        )
        for _ in range(5):
            try:
                self.writer.append(job)
                break
            except CommitConflict:
                raise
            except LakeError:
                # The ingestor drops the batch and re-reads it from its checkpoint: same rows,
                # same expected offsets, so a retry here is what it amounts to.
                self.dropped += 1
        else:
            raise AssertionError("the writer dropped the same batch five times")
        self.offset = nxt


class LiveAppender(threading.Thread):
    """Appends single-service batches of ``batch`` spans until stopped (from its own catalog
    connection, like a writer process)."""

    def __init__(
        self, appender: SpanAppender, first_seq: int, batch: int = 20, pause: float = 0.0
    ) -> None:
        super().__init__(daemon=True)
        self.appender = appender
        self.next_seq = first_seq
        self.batch = batch
        self.pause = pause
        self.stop = threading.Event()
        self.committed: list[int] = []
        self.batches = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                seqs = range(self.next_seq, self.next_seq + self.batch)
                self.appender.append(span_batch(seqs, SERVICES[self.batches % len(SERVICES)]))
                self.committed.extend(seqs)
                self.next_seq = seqs.stop
                self.batches += 1
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
