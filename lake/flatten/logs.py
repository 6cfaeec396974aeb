"""Flatten OTLP logs export requests into the ``logs`` column contract (one row per record)."""

from __future__ import annotations

from collections.abc import Iterable
from operator import attrgetter
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from lake.flatten.chunks import (
    PER_RECORD,
    AttributeChunks,
    Chunks,
    column_chunk,
    column_values,
    joined,
)
from lake.flatten.common import (
    TIMESTAMP,
    Columns,
    LeafTable,
    empty_to_null,
    field,
    hex_ids,
    micros,
    parse,
    render_body,
    resource_fields,
)
from lake.flatten.wire import ColumnarLogsRequest, LeanLogsRequest

SCHEMA = pa.schema(
    [
        field("time", TIMESTAMP, "OTLP log time_unix_nano (observed_time_unix_nano when unset)"),
        field("observed_time", TIMESTAMP, "OTLP log observed_time_unix_nano"),
        field("severity_number", pa.int32(), "OTLP log severity_number"),
        field("severity_text", pa.string(), "OTLP log severity_text"),
        field("body", pa.string(), "OTLP log body (text; JSON for non-string bodies)"),
        field("trace_id", pa.string(), "OTLP log trace_id (hex)"),
        field("span_id", pa.string(), "OTLP log span_id (hex)"),
        field("flags", pa.int64(), "OTLP log flags"),
        field("event_name", pa.string(), "OTLP log event_name"),
        *resource_fields("OTLP log attributes"),
    ]
)


_ATTRIBUTES = attrgetter("attributes")


def _decode_body(data: bytes) -> tuple[str | None]:
    return (render_body(parse(AnyValue, data)) if data else None,)


class LogColumns(Columns):
    """Accumulates log records from serialized ``ExportLogsServiceRequest``s.

    Record fields are read as columns over each scope (see :data:`ColumnarLogsRequest`); a
    request that is not canonically encoded is read record by record.
    """

    schema = SCHEMA

    def __init__(self, kinds: bool = False) -> None:
        super().__init__(kinds)
        #: Numeric fields and body ids as NumPy chunks, one per scope.
        self.time: Chunks = []
        self.observed: Chunks = []
        self.severity_number: Chunks = []
        self.flags: Chunks = []
        self.body: Chunks = []
        #: "" for records without one (null in the table)
        self.severity_text: list[str] = []
        self.event_name: list[str] = []
        self.trace_id: list[bytes] = []
        self.span_id: list[bytes] = []
        self.attributes = AttributeChunks()
        self.bodies = LeafTable(_decode_body, (None,))
        self.maps = [self.attributes]
        #: (record field, chunk list, NumPy type) of the numeric columns
        self._numbers: list[tuple[str, Chunks, Any]] = [
            ("time_unix_nano", self.time, np.uint64),
            ("observed_time_unix_nano", self.observed, np.uint64),
            ("severity_number", self.severity_number, np.int32),
            ("flags", self.flags, np.uint32),
        ]
        #: (record field, row list, value of a record without it) of the other columns
        self._columns: list[tuple[str, list[Any], Any]] = [
            ("severity_text", self.severity_text, ""),
            ("event_name", self.event_name, ""),
            ("trace_id", self.trace_id, b""),
            ("span_id", self.span_id, b""),
        ]
        self.lists = [
            self.time,
            self.observed,
            self.severity_number,
            self.flags,
            self.body,
            self.severity_text,
            self.event_name,
            self.trace_id,
            self.span_id,
        ]

    def _add(self, data: bytes) -> None:
        request = parse(LeanLogsRequest, data)
        # Re-encoded to its own size, no field was given twice in one record, so a column as
        # long as the scope's record count holds one value per record, in order.
        columnar = parse(ColumnarLogsRequest, data) if request.ByteSize() == len(data) else None
        rs = self.rs
        body_of = self.bodies.__getitem__
        for ri, resource_logs in enumerate(request.resource_logs):
            rs.start_resource(resource_logs.resource)
            for si, scope_logs in enumerate(resource_logs.scope_logs):
                records = scope_logs.log_records[:]
                count = len(records)
                rs.mark_rows(rs.start_scope(scope_logs.scope), count)
                merged = (
                    columnar.resource_logs[ri].scope_logs[si].log_records
                    if columnar is not None
                    else PER_RECORD
                )
                for name, chunks, dtype in self._numbers:
                    chunks.append(column_chunk(getattr(merged, name), dtype, records, name))
                for name, target, default in self._columns:
                    target.extend(column_values(getattr(merged, name), default, records, name))
                self.body.append(
                    np.fromiter(
                        map(body_of, column_values(merged.body, b"", records, "body")),
                        np.int32,
                        count,
                    )
                )
                self.attributes.add_rows(
                    merged.attributes[:]
                    if columnar is not None
                    else [kv for record in records for kv in record.attributes],
                    np.fromiter(map(len, map(_ATTRIBUTES, records)), np.int32, count),
                )

    def to_arrow(self) -> pa.Table:
        time_ns = pa.array(joined(self.time, np.uint64)).cast(pa.int64(), safe=False)
        observed_ns = pa.array(joined(self.observed, np.uint64)).cast(pa.int64(), safe=False)
        # The data model says: use the observed time when the event time is unknown.
        event_ns = pc.if_else(pc.equal(time_ns, 0), observed_ns, time_ns)
        service, resource, scope_name, scope_version = self.rs.columns()
        columns = [
            micros(event_ns),
            micros(observed_ns, zero_is_null=True),
            pa.array(joined(self.severity_number, np.int32)),
            empty_to_null(pa.array(self.severity_text, pa.string())),
            self.bodies.column(0, pa.string(), pa.array(joined(self.body, np.int32))),
            hex_ids(self.trace_id),
            hex_ids(self.span_id),
            pa.array(joined(self.flags, np.uint32)).cast(pa.int64()),
            empty_to_null(pa.array(self.event_name, pa.string())),
            service,
            resource,
            scope_name,
            scope_version,
            self.attributes.to_arrow(),
        ]
        return self._with_kinds(pa.Table.from_arrays(columns, schema=SCHEMA), self.attributes)


def flatten_logs(requests: Iterable[bytes | Any]) -> pa.Table:
    """Log records of serialized (or message) logs export requests as one Arrow table."""
    columns = LogColumns()
    for request in requests:
        columns.add(request if isinstance(request, bytes) else request.SerializeToString())
    return columns.to_arrow()
