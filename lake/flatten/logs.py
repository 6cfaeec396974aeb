"""Flatten OTLP logs export requests into the ``logs`` column contract (one row per record)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from lake.flatten.common import (
    TIMESTAMP,
    AttributeColumn,
    Columns,
    LeafTable,
    field,
    hex_ids,
    micros,
    nanos,
    parse,
    render_body,
    resource_fields,
)
from lake.flatten.wire import LeanLogsRequest

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


def _decode_body(data: bytes) -> tuple[str | None]:
    return (render_body(parse(AnyValue, data)) if data else None,)


class LogColumns(Columns):
    """Accumulates log records from serialized ``ExportLogsServiceRequest``s."""

    schema = SCHEMA

    def __init__(self, kinds: bool = False) -> None:
        super().__init__(kinds)
        self.time: list[int] = []
        self.observed: list[int] = []
        self.severity_number: list[int] = []
        self.severity_text: list[str | None] = []
        self.body: list[int] = []
        self.trace_id: list[bytes] = []
        self.span_id: list[bytes] = []
        self.flags: list[int] = []
        self.event_name: list[str | None] = []
        self.attributes = AttributeColumn()
        self.bodies = LeafTable(_decode_body, (None,))
        self.maps = [self.attributes]
        self.lists = [
            self.time,
            self.observed,
            self.severity_number,
            self.severity_text,
            self.body,
            self.trace_id,
            self.span_id,
            self.flags,
            self.event_name,
        ]

    def _add(self, data: bytes) -> None:
        request = parse(LeanLogsRequest, data)
        rs = self.rs
        time_append, observed_append = self.time.append, self.observed.append
        sn_append, st_append = self.severity_number.append, self.severity_text.append
        body_append, body_of = self.body.append, self.bodies.__getitem__
        tid_append, sid_append = self.trace_id.append, self.span_id.append
        flags_append, event_append = self.flags.append, self.event_name.append
        attrs = self.attributes
        ids, ids_extend, offsets_append = attrs.ids, attrs.ids.extend, attrs.offsets.append
        attr_of = attrs.__getitem__

        for resource_logs in request.resource_logs:
            rs.start_resource(resource_logs.resource)
            for scope_logs in resource_logs.scope_logs:
                records = scope_logs.log_records
                rs.mark_rows(rs.start_scope(scope_logs.scope), len(records))
                for record in records:
                    time_append(record.time_unix_nano)
                    observed_append(record.observed_time_unix_nano)
                    sn_append(record.severity_number)
                    st_append(record.severity_text or None)
                    body_append(body_of(record.body))
                    tid_append(record.trace_id)
                    sid_append(record.span_id)
                    flags_append(record.flags)
                    event_append(record.event_name or None)
                    ids_extend(map(attr_of, record.attributes[:]))
                    offsets_append(len(ids))

    def to_arrow(self) -> pa.Table:
        time_ns, observed_ns = nanos(self.time), nanos(self.observed)
        # The data model says: use the observed time when the event time is unknown.
        event_ns = pc.if_else(pc.equal(time_ns, 0), observed_ns, time_ns)
        service, resource, scope_name, scope_version = self.rs.columns()
        columns = [
            micros(event_ns),
            micros(observed_ns, zero_is_null=True),
            pa.array(self.severity_number, pa.int32()),
            pa.array(self.severity_text, pa.string()),
            self.bodies.column(0, pa.string(), pa.array(self.body, pa.int32())),
            hex_ids(self.trace_id),
            hex_ids(self.span_id),
            pa.array(self.flags, pa.int64()),
            pa.array(self.event_name, pa.string()),
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
