"""Decode, validate and split export requests; Kafka records per the shared contract."""

from __future__ import annotations

import gzip

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from emberlake.errors import InvalidRequest
from ingest.otlp_receiver.export import (
    decode_export,
    kafka_records,
    request_id,
    split_by_service,
)
from ingest.otlp_receiver.otlp_json import request_to_json
from ingest.otlp_receiver.signals import LOGS, METRICS, TRACES
from ingest.topics import Topics
from tests.ingest.otlp_receiver.otlp_data import logs_request, metrics_request, spans_request


def _span_names(payload: bytes) -> list[str]:
    req = ExportTraceServiceRequest.FromString(payload)
    return [s.name for rs in req.resource_spans for ss in rs.scope_spans for s in ss.spans]


def test_one_service_forwards_the_original_bytes() -> None:
    raw = spans_request(["checkout", "checkout"]).SerializeToString()
    decoded = decode_export(TRACES, raw)
    assert [b.service for b in decoded.batches] == ["checkout"]
    assert decoded.batches[0].payload is raw
    assert decoded.rejected == 0
    assert decoded.response() == TRACES.response_type()


def test_split_by_service_keeps_order_within_each_service() -> None:
    req = spans_request(["a", "b", "a", None], spans_per_resource=2)
    decoded = decode_export(TRACES, req.SerializeToString())
    by_service = {b.service: b.payload for b in decoded.batches}
    assert list(by_service) == ["a", "b", "unknown_service"]
    assert _span_names(by_service["a"]) == ["span-0-0", "span-0-1", "span-2-0", "span-2-1"]
    assert _span_names(by_service["b"]) == ["span-1-0", "span-1-1"]
    assert _span_names(by_service["unknown_service"]) == ["span-3-0", "span-3-1"]
    part = ExportTraceServiceRequest.FromString(by_service["a"])
    assert list(part.resource_spans) == [req.resource_spans[0], req.resource_spans[2]]


def test_empty_service_name_is_unknown_service() -> None:
    req = spans_request([""])
    assert [b.service for b in decode_export(TRACES, req.SerializeToString()).batches] == [
        "unknown_service"
    ]


def test_empty_request_produces_nothing() -> None:
    decoded = decode_export(TRACES, b"")
    assert decoded.batches == [] and decoded.rejected == 0


def test_refused_spans_are_partial_success() -> None:
    req = spans_request(["a", "b"], spans_per_resource=3, bad=[(0, 1), (1, 0), (1, 2)])
    decoded = decode_export(TRACES, req.SerializeToString())
    assert decoded.rejected == 3
    assert decoded.error_message == "3 spans refused: span span_id must be 8 bytes, got 3 bytes"
    by_service = {b.service: _span_names(b.payload) for b in decoded.batches}
    assert by_service == {"a": ["span-0-0", "span-0-2"], "b": ["span-1-1"]}
    response = decoded.response()
    assert response.partial_success.rejected_spans == 3  # type: ignore[attr-defined]
    assert "span_id" in response.partial_success.error_message  # type: ignore[attr-defined]


def test_single_service_with_refusals_is_reencoded() -> None:
    req = spans_request(["a", "a"], spans_per_resource=2, bad=[(1, 0)])
    decoded = decode_export(TRACES, req.SerializeToString())
    assert len(decoded.batches) == 1
    assert _span_names(decoded.batches[0].payload) == ["span-0-0", "span-0-1", "span-1-1"]


def test_request_with_only_bad_records_produces_nothing() -> None:
    req = spans_request(["a"], spans_per_resource=2, bad=[(0, 0), (0, 1)])
    decoded = decode_export(TRACES, req.SerializeToString())
    assert decoded.batches == [] and decoded.rejected == 2


def test_error_message_lists_a_few_distinct_reasons() -> None:
    req = spans_request(["a"], spans_per_resource=6)
    spans = req.resource_spans[0].scope_spans[0].spans
    spans[0].trace_id = b"1"
    spans[1].span_id = b"1"
    spans[2].parent_span_id = b"1"
    spans[3].trace_id = b"12"
    spans[4].span_id = b"12"
    decoded = decode_export(TRACES, req.SerializeToString())
    assert decoded.rejected == 5
    assert decoded.error_message.startswith("5 spans refused: span trace_id must be 16 bytes")
    assert decoded.error_message.endswith("and 2 more kinds of problem")


def test_logs_and_metrics_split_and_refuse() -> None:
    logs = decode_export(LOGS, logs_request(["a", "b"], bad=[(1, 1)]).SerializeToString())
    assert [b.service for b in logs.batches] == ["a", "b"]
    assert logs.rejected == 1
    assert logs.response().partial_success.rejected_log_records == 1  # type: ignore[attr-defined]
    assert len(ExportLogsServiceRequest.FromString(logs.batches[1].payload).resource_logs) == 1

    metrics = decode_export(
        METRICS, metrics_request(["a", "b"], bad_exemplar=True).SerializeToString()
    )
    assert [b.service for b in metrics.batches] == ["a", "b"]
    assert metrics.rejected == 2
    assert metrics.response().partial_success.rejected_data_points == 2  # type: ignore[attr-defined]
    part = ExportMetricsServiceRequest.FromString(metrics.batches[0].payload)
    assert len(part.resource_metrics[0].scope_metrics[0].metrics[0].gauge.data_points) == 1


def test_json_decodes_to_the_same_request() -> None:
    req = spans_request(["a", "b"])
    decoded = decode_export(TRACES, request_to_json(req), "json")
    assert [b.service for b in decoded.batches] == ["a", "b"]
    joined = b"".join(b.payload for b in decoded.batches)
    assert ExportTraceServiceRequest.FromString(joined) == req


def test_split_falls_back_when_bytes_do_not_match_the_message() -> None:
    req = spans_request(["a", "b"])
    decoded = split_by_service(TRACES, req, b"")
    assert (
        ExportTraceServiceRequest.FromString(decoded.batches[1].payload).resource_spans[0]
        == (req.resource_spans[1])
    )


@pytest.mark.parametrize(
    "body",
    [
        b"\xff\xff\xff\xff",
        b"this is not protobuf",
        gzip.compress(spans_request().SerializeToString()),
        spans_request().SerializeToString()[:-7],
    ],
)
def test_garbage_protobuf_is_invalid(body: bytes) -> None:
    with pytest.raises(InvalidRequest, match="not a protobuf ExportTraceServiceRequest"):
        decode_export(TRACES, body)


def test_kafka_records_follow_the_contract() -> None:
    decoded = decode_export(TRACES, spans_request(["a", "b"]).SerializeToString())
    records = kafka_records(decoded, "acme", Topics("pfx"), 1_700_000_000_123_456)
    assert [(t, k) for t, k, _, _ in records] == [
        ("pfx.otlp.spans", b"acme/a"),
        ("pfx.otlp.spans", b"acme/b"),
    ]
    assert dict(records[0][3]) == {
        "emberlake-tenant": b"acme",
        "emberlake-signal": b"spans",
        "emberlake-received-us": b"1700000000123456",
        "emberlake-request-id": request_id("acme", b"spans", records[0][2]),
    }
    assert records[1][2] == decoded.batches[1].payload
    # The same data sent again carries the same request id; other data or tenants do not.
    again = kafka_records(decoded, "acme", Topics("pfx"), 1_800_000_000_000_000)
    assert dict(again[0][3])["emberlake-request-id"] == dict(records[0][3])["emberlake-request-id"]
    ids = {dict(r[3])["emberlake-request-id"] for r in records}
    ids |= {dict(r[3])["emberlake-request-id"] for r in kafka_records(decoded, "beta", Topics(), 1)}
    assert len(ids) == 4


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    out, size = bytearray([number << 3 | 2]), len(payload)
    while size > 0x7F:
        out.append(size & 0x7F | 0x80)
        size >>= 7
    out.append(size)
    return bytes(out) + payload


def test_a_span_giving_a_field_twice_travels_reencoded_and_lands_on_its_own_row() -> None:
    """Protobuf keeps the last of a repeated singular field. Span 0 names itself twice and
    span 1 not at all: the scope holds two names for two spans, and only re-encoding keeps
    them from being read as one name per span."""
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    from lake.flatten import flatten_spans
    from tests.lake.otlp_records import kv

    first = Span(trace_id=b"\x01" * 16, span_id=b"\x01" * 8, name="draft").SerializeToString()
    named_twice = first + Span(name="final").SerializeToString()
    unnamed = Span(trace_id=b"\x01" * 16, span_id=b"\x02" * 8).SerializeToString()
    scope = _field(2, named_twice) + _field(2, unnamed)  # ScopeSpans.spans
    resource = Resource(attributes=[kv("service.name", "checkout")]).SerializeToString()
    raw = _field(1, _field(1, resource) + _field(2, scope))  # resource_spans{resource, scope}
    assert _span_names(raw) == ["final", ""]

    decoded = decode_export(TRACES, raw)
    payload = bytes(decoded.batches[0].payload)
    assert payload != raw and _span_names(payload) == ["final", ""]
    rows = flatten_spans([payload]).to_pylist()
    assert [(r["span_id"], r["name"]) for r in rows] == [("01" * 8, "final"), ("02" * 8, "")]


def test_canonical_span_requests_travel_as_they_came() -> None:
    raw = spans_request(["checkout"] * 3).SerializeToString()
    assert decode_export(TRACES, raw).batches[0].payload is raw
