"""Span fields read as merged columns must land on the right rows, whichever spans set them."""

from __future__ import annotations

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from lake.flatten import flatten_spans
from lake.flatten.spans import KINDS, STATUS_CODES
from tests.lake.otlp_records import kv

T = 1_700_000_000_000_000_000


def _patchy_request() -> ExportTraceServiceRequest:
    """Three resources, scopes with and without spans, and every optional field set on only
    some spans (so each column is full, empty or partial in some scope)."""
    request = ExportTraceServiceRequest()
    for r in range(3):
        rs = request.resource_spans.add()
        rs.resource.attributes.extend([kv("service.name", f"svc{r}")])
        for s in range(r + 1):
            ss = rs.scope_spans.add()
            ss.scope.name = f"scope{s}"
            for i in range(s * 4):
                span = ss.spans.add()
                span.trace_id = bytes([r, s, i]) * 5 + b"\x01"
                span.span_id = bytes([i + 1]) * 8
                if i % 2:
                    span.parent_span_id = bytes([i]) * 8
                if i % 3:
                    span.name = f"op{r}{s}{i}"
                span.kind = i % 6
                span.start_time_unix_nano = T + i if i != 2 else 0
                span.end_time_unix_nano = T + 1000 * i
                if i % 4 == 1:
                    span.trace_state = f"k={i}"
                if i % 3 == 0:
                    span.status.code = i % 3 + (2 if i else 0)
                    span.status.message = "m" if i else ""
                span.attributes.extend([kv(f"a{j}", i * j) for j in range(i % 3)])
                if i == 5:
                    span.events.add(name="e", time_unix_nano=T)
    return request


def test_each_row_gets_its_own_spans_values() -> None:
    request = _patchy_request()
    table = flatten_spans([request.SerializeToString()])
    spans = [
        (rs, ss.scope, span)
        for rs in request.resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
    ]
    assert table.num_rows == len(spans)
    rows = table.to_pylist()
    for row, (rs, scope, span) in zip(rows, spans, strict=True):
        assert row["trace_id"] == span.trace_id.hex()
        assert row["span_id"] == span.span_id.hex()
        assert row["parent_span_id"] == (span.parent_span_id.hex() or None)
        assert row["name"] == span.name
        assert row["kind"] == KINDS[span.kind]
        assert row["trace_state"] == (span.trace_state or None)
        assert row["status_code"] == STATUS_CODES[span.status.code]
        assert row["status_message"] == (span.status.message or None)
        assert row["duration_ms"] == (span.end_time_unix_nano - span.start_time_unix_nano) / 1e6
        assert row["service_name"] == rs.resource.attributes[0].value.string_value
        assert row["scope_name"] == scope.name
        assert row["attributes"] == [(a.key, str(a.value.int_value)) for a in span.attributes]
        assert (row["events"] != "[]") == bool(span.events)


def test_a_field_repeated_within_a_span_keeps_the_last_value() -> None:
    # Concatenated serializations of one span merge: protobuf keeps the last value of a
    # singular field. The merged column is then longer than the span count, so the rows
    # must come from per-span reads.
    first = Span(name="one", start_time_unix_nano=T)
    second = Span(name="two", start_time_unix_nano=T)
    extra = Span(name="renamed")
    # Build the wire bytes by hand so the name field really occurs twice in the first span.
    raw_span = first.SerializeToString() + extra.SerializeToString()
    raw = _request_with_raw_spans([raw_span, second.SerializeToString()])
    table = flatten_spans([raw])
    assert table.column("name").to_pylist() == ["renamed", "two"]


def _request_with_raw_spans(spans: list[bytes]) -> bytes:
    """An ExportTraceServiceRequest holding the given span bytes as they are."""

    def field(number: int, payload: bytes) -> bytes:
        return _varint(number << 3 | 2) + _varint(len(payload)) + payload

    scope_spans = b"".join(field(2, s) for s in spans)  # ScopeSpans.spans = 2
    resource_spans = field(2, scope_spans)  # ResourceSpans.scope_spans = 2
    return field(1, resource_spans)  # ExportTraceServiceRequest.resource_spans = 1


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)
