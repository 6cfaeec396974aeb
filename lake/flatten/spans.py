"""Flatten OTLP trace export requests into the ``spans`` column contract (one row per span)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from lake.flatten.common import (
    TIMESTAMP,
    AttributeColumn,
    Columns,
    LeafTable,
    attributes_dict,
    enum_names,
    field,
    hex_ids,
    iso_time,
    micros,
    nanos,
    parse,
    resource_fields,
)
from lake.flatten.wire import FullTraceRequest, LeanTraceRequest

KINDS = ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
STATUS_CODES = ("UNSET", "OK", "ERROR")
_NO_ITEMS = "[]"

SCHEMA = pa.schema(
    [
        field("start_time", TIMESTAMP, "OTLP span start_time_unix_nano"),
        field("end_time", TIMESTAMP, "OTLP span end_time_unix_nano"),
        field("duration_ms", pa.float64(), "OTLP span end_time_unix_nano - start_time_unix_nano"),
        field("trace_id", pa.string(), "OTLP span trace_id (hex)"),
        field("span_id", pa.string(), "OTLP span span_id (hex)"),
        field("parent_span_id", pa.string(), "OTLP span parent_span_id (hex, null for roots)"),
        field("trace_state", pa.string(), "OTLP span trace_state"),
        field("name", pa.string(), "OTLP span name"),
        field("kind", pa.string(), "OTLP span kind"),
        field("status_code", pa.string(), "OTLP span status.code"),
        field("status_message", pa.string(), "OTLP span status.message"),
        *resource_fields("OTLP span attributes"),
        field("events", pa.string(), "OTLP span events (JSON)"),
        field("links", pa.string(), "OTLP span links (JSON)"),
    ]
)


def _decode_status(data: bytes) -> tuple[int, str | None]:
    status = parse(Status, data)
    return (status.code, status.message or None)


def events_json(items: Iterable[bytes]) -> str:
    """Span events as JSON text: ``[{"time": iso, "name", "attributes": {}}]``."""
    out = []
    for data in items:
        event = parse(Span.Event, data)
        out.append(
            {
                "time": iso_time(event.time_unix_nano),
                "name": event.name,
                "attributes": attributes_dict(event.attributes),
            }
        )
    return json.dumps(out, separators=(",", ":"))


def links_json(items: Iterable[bytes]) -> str:
    """Span links as JSON text: ``[{"trace_id", "span_id", "trace_state", "attributes"}]``."""
    out = []
    for data in items:
        link = parse(Span.Link, data)
        out.append(
            {
                "trace_id": link.trace_id.hex(),
                "span_id": link.span_id.hex(),
                "trace_state": link.trace_state or None,
                "attributes": attributes_dict(link.attributes),
            }
        )
    return json.dumps(out, separators=(",", ":"))


class SpanColumns(Columns):
    """Accumulates spans from serialized ``ExportTraceServiceRequest``s."""

    schema = SCHEMA

    def __init__(self, kinds: bool = False) -> None:
        super().__init__(kinds)
        self.start: list[int] = []
        self.end: list[int] = []
        self.trace_id: list[bytes] = []
        self.span_id: list[bytes] = []
        self.parent_id: list[bytes] = []
        self.trace_state: list[str | None] = []
        self.name: list[str] = []
        self.kind: list[int] = []
        self.status: list[int] = []
        #: (row, events JSON, links JSON) of the few spans that have events or links; every
        #: other row gets "[]" when the columns are built.
        self.extras: list[tuple[int, str, str]] = []
        self.attributes = AttributeColumn()
        self.statuses = LeafTable(_decode_status, (0, None))
        self.maps = [self.attributes]
        self.lists = [
            self.start,
            self.end,
            self.trace_id,
            self.span_id,
            self.parent_id,
            self.trace_state,
            self.name,
            self.kind,
            self.status,
            self.extras,
        ]

    def _add(self, data: bytes) -> None:
        request = parse(LeanTraceRequest, data)
        rs = self.rs
        start_append, end_append = self.start.append, self.end.append
        tid_append, sid_append = self.trace_id.append, self.span_id.append
        pid_append, ts_append = self.parent_id.append, self.trace_state.append
        name_append, kind_append = self.name.append, self.kind.append
        status_append, status_of = self.status.append, self.statuses.__getitem__
        rows = self.start
        attrs = self.attributes
        ids, ids_extend, offsets_append = attrs.ids, attrs.ids.extend, attrs.offsets.append
        attr_of = attrs.__getitem__
        full: Any = None  # the request with all events and links, parsed only when needed
        for ri, resource_spans in enumerate(request.resource_spans):
            rs.start_resource(resource_spans.resource)
            for si, scope_spans in enumerate(resource_spans.scope_spans):
                spans = scope_spans.spans
                rs.mark_rows(rs.start_scope(scope_spans.scope), len(spans))
                first = len(rows)
                for span in spans:
                    start_append(span.start_time_unix_nano)
                    end_append(span.end_time_unix_nano)
                    tid_append(span.trace_id)
                    sid_append(span.span_id)
                    pid_append(span.parent_span_id)
                    ts_append(span.trace_state or None)
                    name_append(span.name)
                    kind_append(span.kind)
                    status_append(status_of(span.status))
                    ids_extend(map(attr_of, span.attributes[:]))
                    offsets_append(len(ids))
                    if span.events or span.links:
                        row = len(rows) - 1
                        full = full or parse(FullTraceRequest, data)
                        whole = full.resource_spans[ri].scope_spans[si].spans[row - first]
                        self.extras.append(
                            (
                                row,
                                events_json(whole.events) if whole.events else _NO_ITEMS,
                                links_json(whole.links) if whole.links else _NO_ITEMS,
                            )
                        )

    def to_arrow(self) -> pa.Table:
        start_ns, end_ns = nanos(self.start), nanos(self.end)
        duration = pc.divide(pc.subtract(end_ns, start_ns).cast(pa.float64(), safe=False), 1e6)
        status_ids = pa.array(self.status, pa.int32())
        status_codes = [e[0] for e in self.statuses.entries]
        service, resource, scope_name, scope_version = self.rs.columns()
        columns = [
            micros(start_ns),
            micros(end_ns),
            duration,
            hex_ids(self.trace_id, empty_is_null=False),
            hex_ids(self.span_id, empty_is_null=False),
            hex_ids(self.parent_id),
            pa.array(self.trace_state, pa.string()),
            pa.array(self.name, pa.string()),
            enum_names(self.kind, KINDS),
            enum_names(status_codes, STATUS_CODES).take(status_ids),
            self.statuses.column(1, pa.string(), status_ids),
            service,
            resource,
            scope_name,
            scope_version,
            self.attributes.to_arrow(),
            *self._extras_columns(),
        ]
        return self._with_kinds(pa.Table.from_arrays(columns, schema=SCHEMA), self.attributes)

    def _extras_columns(self) -> tuple[pa.Array, pa.Array]:
        """The events and links columns: "[]" but for the spans that have any."""
        events = [_NO_ITEMS] * len(self.start)
        links = events.copy()
        for row, event_json, link_json in self.extras:
            events[row], links[row] = event_json, link_json
        return pa.array(events, pa.string()), pa.array(links, pa.string())


def flatten_spans(requests: Iterable[bytes | Any]) -> pa.Table:
    """Spans of serialized (or message) trace export requests as one Arrow table."""
    columns = SpanColumns()
    for request in requests:
        columns.add(request if isinstance(request, bytes) else request.SerializeToString())
    return columns.to_arrow()
