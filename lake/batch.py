"""One batch of the lake writer: Kafka records routed to per-table accumulators (pure logic).

A record goes to ``<tenant>.<signal>`` when it decodes, else to ``<tenant>.dead_letters`` (or
``emberlake.dead_letters`` when its tenant header is missing or invalid). A record its
destination table already holds (offset below the table's stored offset for that partition, see
:mod:`lake.offsets`) is skipped; to know a record's destination it must be decoded, so records in
the range a crash left half-committed are decoded once more into a scratch accumulator.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from emberlake.errors import InvalidRequest, TenantError
from emberlake.tenancy import validate_tenant
from ingest.topics import HEADER_TENANT, Topics
from lake.flatten import Columns, columns_for
from lake.flatten.common import micros
from lake.offsets import TopicPartition
from lake.tables import DEAD_LETTERS, DEAD_LETTERS_SCHEMA, SYSTEM_NAMESPACE

#: (namespace, table)
TableRef = tuple[str, str]
#: Returns the stored next offset of (table, partition), None when nothing is stored.
CommittedLookup = Callable[[TableRef, TopicPartition], int | None]


@dataclass(frozen=True)
class Record:
    """The parts of a Kafka record the writer uses."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()

    @property
    def tp(self) -> TopicPartition:
        return (self.topic, self.partition)

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value.decode("utf-8", "replace") if value is not None else None
        return None


class DeadLetterColumns:
    """Accumulates records the writer could not store, with why, as ``dead_letters`` rows."""

    schema = DEAD_LETTERS_SCHEMA

    def __init__(self) -> None:
        self.rows_: list[tuple[int, str | None, str, int, int, str | None, str, bytes]] = []

    @property
    def rows(self) -> int:
        return len(self.rows_)

    def add_record(self, record: Record, tenant: str | None, reason: str) -> None:
        key = record.key.decode("utf-8", "replace") if record.key is not None else None
        self.rows_.append(
            (
                time.time_ns(),
                tenant,
                record.topic,
                record.partition,
                record.offset,
                key,
                reason,
                record.value or b"",
            )
        )

    def to_arrow(self) -> pa.Table:
        columns: list[Any] = (
            list(zip(*self.rows_, strict=True)) if self.rows_ else [() for _ in self.schema]
        )
        arrays = [micros(list(columns[0]))] + [
            pa.array(list(col), f.type)
            for col, f in zip(columns[1:], list(self.schema)[1:], strict=True)
        ]
        return pa.Table.from_arrays(arrays, schema=self.schema)


@dataclass
class TableBatch:
    """Rows bound for one table, and the partitions they came from."""

    columns: Columns | DeadLetterColumns
    partitions: set[TopicPartition] = field(default_factory=set)


class Batch:
    """Records of one writer batch, routed and flattened, until they are committed."""

    def __init__(self, topics: Topics, kinds: bool = False, isolate: bool = False):
        self.topics = topics
        #: Convert each record alone before taking it (after a batch failed as a whole), so a
        #: record the lake cannot store is set aside instead of failing its batch again.
        self.isolate = isolate
        #: Flatten with the ``<map>__kinds`` columns a schema inference hook reads.
        self.kinds = kinds
        self.tables: dict[TableRef, TableBatch] = {}
        #: (topic, partition) -> offset after the last record seen, skipped ones included
        self.ends: dict[TopicPartition, int] = {}
        #: (table, partition) -> the stored offset this batch's skip decisions relied on; the
        #: commit must find exactly these (or what this writer committed since) in the tables.
        self.floors: dict[tuple[TableRef, TopicPartition], int | None] = {}
        self.records = 0
        self.skipped = 0
        self.started: float | None = None
        self._scratch: dict[str, Columns] = {}
        self._tenants: dict[str, str | None] = {}

    @property
    def rows(self) -> int:
        return sum(t.columns.rows for t in self.tables.values())

    def age(self, now: float | None = None) -> float:
        if self.started is None:
            return 0.0
        return (time.monotonic() if now is None else now) - self.started

    def _tenant(self, raw: str | None) -> str | None:
        if raw is None:
            return None
        if raw not in self._tenants:
            try:
                self._tenants[raw] = validate_tenant(raw)
            except TenantError:
                self._tenants[raw] = None
        return self._tenants[raw]

    def _table(self, ref: TableRef) -> TableBatch:
        table = self.tables.get(ref)
        if table is None:
            columns = (
                DeadLetterColumns()
                if ref[1] == DEAD_LETTERS
                else columns_for(ref[1], kinds=self.kinds)
            )
            table = self.tables[ref] = TableBatch(columns)
        return table

    def _stored(self, committed: CommittedLookup, ref: TableRef, tp: TopicPartition) -> int | None:
        key = (ref, tp)
        if key not in self.floors:
            self.floors[key] = committed(ref, tp)
        return self.floors[key]

    def add(self, record: Record, committed: CommittedLookup) -> int:
        """Route one record; returns the rows it added (0 if skipped or set aside)."""
        if self.started is None:
            self.started = time.monotonic()
        self.records += 1
        self.ends[record.tp] = record.offset + 1
        signal = self.topics.signal_of(record.topic)
        raw_tenant = record.header(HEADER_TENANT)
        tenant = self._tenant(raw_tenant)
        if tenant is None:
            reason = "missing tenant header" if raw_tenant is None else "invalid tenant"
            ref = (SYSTEM_NAMESPACE, DEAD_LETTERS)
            self._dead_letter(record, ref, raw_tenant, reason, committed)
            return 0
        ref = (tenant, signal)
        value = record.value or b""
        stored = self._stored(committed, ref, record.tp)
        if stored is not None and record.offset < stored:
            # Already in the table, unless it is a record that was set aside as a dead letter.
            scratch = self._scratch.get(signal) or self._scratch.setdefault(
                signal, columns_for(signal)
            )
            try:
                self._check_storable(signal, value)
                scratch.add(value)
            except InvalidRequest as exc:
                self._dead_letter(record, (tenant, DEAD_LETTERS), tenant, str(exc), committed)
                return 0
            self.skipped += 1
            return 0
        table = self._table(ref)
        try:
            self._check_storable(signal, value)
            added = table.columns.add(value)  # type: ignore[union-attr]
        except InvalidRequest as exc:
            self._dead_letter(record, (tenant, DEAD_LETTERS), tenant, str(exc), committed)
            return 0
        table.partitions.add(record.tp)
        return int(added)

    def _check_storable(self, signal: str, value: bytes) -> None:
        if not self.isolate:
            return
        probe = columns_for(signal, kinds=self.kinds)
        try:
            probe.add(value)
            probe.to_arrow()
        except InvalidRequest:
            raise
        except Exception as exc:
            raise InvalidRequest(f"cannot be stored: {exc!r}") from exc

    def _dead_letter(
        self,
        record: Record,
        ref: TableRef,
        tenant: str | None,
        reason: str,
        committed: CommittedLookup,
    ) -> None:
        stored = self._stored(committed, ref, record.tp)
        if stored is not None and record.offset < stored:
            self.skipped += 1
            return
        table = self._table(ref)
        assert isinstance(table.columns, DeadLetterColumns)
        table.columns.add_record(record, tenant, reason)
        table.partitions.add(record.tp)
