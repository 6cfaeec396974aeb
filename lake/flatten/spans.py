"""Flatten OTLP trace export requests into the ``spans`` column contract (one row per span)."""

from __future__ import annotations

from collections.abc import Iterable
from operator import attrgetter
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from lake.flatten.chunks import AttributeChunks, Chunks, column_chunk, column_values, joined
from lake.flatten.common import (
    TIMESTAMP,
    Columns,
    LeafTable,
    attributes_dict,
    compact_json,
    empty_to_null,
    enum_names,
    field,
    hex_ids,
    iso_time,
    micros,
    parse,
    resource_fields,
)
from lake.flatten.wire import ColumnarTraceRequest, ExtrasTraceRequest, LeanTraceRequest

KINDS = ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
STATUS_CODES = ("UNSET", "OK", "ERROR")
_NO_ITEMS = "[]"
_STATUS = attrgetter("status")
_ATTRIBUTES = attrgetter("attributes")
_EVENTS = attrgetter("events")
_LINKS = attrgetter("links")

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
    return compact_json(out)


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
    return compact_json(out)


class SpanColumns(Columns):
    """Accumulates spans from serialized ``ExportTraceServiceRequest``s."""

    schema = SCHEMA

    def __init__(self, kinds: bool = False) -> None:
        super().__init__(kinds)
        #: Numeric fields as NumPy chunks, one per scope (see :mod:`lake.flatten.chunks`).
        self.start: Chunks = []
        self.end: Chunks = []
        self.kind: Chunks = []
        #: Status leaf ids, one chunk per scope.
        self.status: Chunks = []
        self.trace_id: list[bytes] = []
        self.span_id: list[bytes] = []
        self.parent_id: list[bytes] = []
        #: "" for spans without one (null in the table)
        self.trace_state: list[str] = []
        self.name: list[str] = []
        #: (row, events JSON, links JSON) of the few spans that have events or links; every
        #: other row gets "[]" when the columns are built.
        self.extras: list[tuple[int, str, str]] = []
        self.attributes = AttributeChunks()
        self.statuses = LeafTable(_decode_status, (0, None))
        self.maps = [self.attributes]
        #: (span field, chunk list, NumPy type) of the numeric columns
        self._numbers: list[tuple[str, Chunks, Any]] = [
            ("start_time_unix_nano", self.start, np.uint64),
            ("end_time_unix_nano", self.end, np.uint64),
            ("kind", self.kind, np.int32),
        ]
        #: (span field, row list, value of a span without it) of the other columns
        self._columns: list[tuple[str, list[Any], Any]] = [
            ("trace_id", self.trace_id, b""),
            ("span_id", self.span_id, b""),
            ("parent_span_id", self.parent_id, b""),
            ("trace_state", self.trace_state, ""),
            ("name", self.name, ""),
        ]
        self.lists = [
            self.start,
            self.end,
            self.kind,
            self.status,
            self.trace_id,
            self.span_id,
            self.parent_id,
            self.trace_state,
            self.name,
            self.extras,
        ]

    def _add(self, data: bytes) -> None:
        request = parse(LeanTraceRequest, data)
        columnar = parse(ColumnarTraceRequest, data)
        rs = self.rs
        attrs = self.attributes
        status_of = self.statuses.__getitem__
        full: Any = None  # the spans' events and links, parsed only when needed
        for ri, (resource_spans, resource_columns) in enumerate(
            zip(request.resource_spans, columnar.resource_spans, strict=True)
        ):
            rs.start_resource(resource_spans.resource)
            for si, (scope_spans, scope_columns) in enumerate(
                zip(resource_spans.scope_spans, resource_columns.scope_spans, strict=True)
            ):
                spans = scope_spans.spans[:]
                count = len(spans)
                first = self.rows
                rs.mark_rows(rs.start_scope(scope_spans.scope), count)
                merged = scope_columns.spans
                for name, chunks, dtype in self._numbers:
                    chunks.append(column_chunk(getattr(merged, name), dtype, spans, name))
                for name, target, default in self._columns:
                    target.extend(column_values(getattr(merged, name), default, spans, name))
                statuses = merged.status
                if not statuses:
                    self.status.append(np.full(count, status_of(b""), np.int32))
                else:
                    source = statuses if len(statuses) == count else map(_STATUS, spans)
                    self.status.append(np.fromiter(map(status_of, source), np.int32, count))
                # The scope's attributes as one flat column, rows cut by each span's count.
                attrs.add_rows(
                    merged.attributes,
                    np.fromiter(map(len, map(_ATTRIBUTES, spans)), np.int32, count),
                )
                if not (merged.events or merged.links):
                    continue
                full = full or parse(ExtrasTraceRequest, data)
                whole_spans = full.resource_spans[ri].scope_spans[si].spans
                # The lean mirror keeps a span's last event (link) or b"": which spans have any.
                flagged = np.zeros(count, np.int32)
                for items, getter in ((merged.events, _EVENTS), (merged.links, _LINKS)):
                    if items:
                        flagged += np.fromiter(map(len, map(getter, spans)), np.int32, count)
                for j in np.flatnonzero(flagged).tolist():
                    whole = whole_spans[j]
                    self.extras.append(
                        (
                            first + j,
                            events_json(whole.events) if whole.events else _NO_ITEMS,
                            links_json(whole.links) if whole.links else _NO_ITEMS,
                        )
                    )

    def to_arrow(self) -> pa.Table:
        start_ns = pa.array(joined(self.start, np.uint64)).cast(pa.int64(), safe=False)
        end_ns = pa.array(joined(self.end, np.uint64)).cast(pa.int64(), safe=False)
        duration = pc.divide(pc.subtract(end_ns, start_ns).cast(pa.float64(), safe=False), 1e6)
        status_ids = pa.array(joined(self.status, np.int32))
        status_codes = [e[0] for e in self.statuses.entries]
        service, resource, scope_name, scope_version = self.rs.columns()
        columns = [
            micros(start_ns),
            micros(end_ns),
            duration,
            hex_ids(self.trace_id, empty_is_null=False),
            hex_ids(self.span_id, empty_is_null=False),
            hex_ids(self.parent_id),
            empty_to_null(pa.array(self.trace_state, pa.string())),
            pa.array(self.name, pa.string()),
            enum_names(joined(self.kind, np.int32), KINDS),
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
        # Each column is a take from ["[]", the few JSON texts]: row i picks text k+1 if it
        # is the k-th span with extras, else "[]" (no Python string per row).
        picks = np.zeros(self.rows, np.int32)
        picks[[row for row, _, _ in self.extras]] = np.arange(1, len(self.extras) + 1)
        indices = pa.array(picks)
        events = pa.array([_NO_ITEMS, *(e for _, e, _ in self.extras)], pa.string())
        links = pa.array([_NO_ITEMS, *(lk for _, _, lk in self.extras)], pa.string())
        return events.take(indices), links.take(indices)


def flatten_spans(requests: Iterable[bytes | Any]) -> pa.Table:
    """Spans of serialized (or message) trace export requests as one Arrow table."""
    columns = SpanColumns()
    for request in requests:
        columns.add(request if isinstance(request, bytes) else request.SerializeToString())
    return columns.to_arrow()
