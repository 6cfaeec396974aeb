"""Hostile OTLP requests, built by hand (the SDK would never send them), and a seeded mutator.

Deeply nested values are written as protobuf wire bytes directly: building 10,000 nested
messages through the Python API would hit the interpreter's own recursion limit first.
"""

from __future__ import annotations

import gzip
import json
import math
import random
import time
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from ingest.otlp_receiver.wire import encode_varint


def _len_field(number: int, payload: bytes) -> bytes:
    return encode_varint(number << 3 | 2) + encode_varint(len(payload)) + payload


def nested_kvlist(depth: int) -> bytes:
    """Wire bytes of an AnyValue that is a kvlist holding a kvlist ... ``depth`` levels deep."""
    value = _len_field(1, b"leaf")  # AnyValue.string_value
    for _ in range(depth):
        kv = _len_field(1, b"k") + _len_field(2, value)  # KeyValue{key, value}
        value = _len_field(6, _len_field(1, kv))  # AnyValue.kvlist_value{values}
    return value


def span_request(
    uid: str,
    service: str = "hostile",
    start_ns: int | None = None,
    end_ns: int | None = None,
    attributes: list[KeyValue] | None = None,
) -> ExportTraceServiceRequest:
    """One span with a ``test.uid`` attribute (and any others given)."""
    now = time.time_ns()
    request = ExportTraceServiceRequest()
    resource = request.resource_spans.add()
    resource.resource.attributes.add(key="service.name").value.string_value = service
    span = resource.scope_spans.add().spans.add()
    span.trace_id = random.randbytes(16)
    span.span_id = random.randbytes(8)
    span.name = "hostile"
    span.start_time_unix_nano = now if start_ns is None else start_ns
    span.end_time_unix_nano = now + 1000 if end_ns is None else end_ns
    span.attributes.add(key="test.uid").value.string_value = uid
    span.attributes.extend(attributes or [])
    return request


def deep_span_request(uid: str, depth: int) -> bytes:
    """A valid span request whose one extra attribute is a kvlist nested ``depth`` deep."""
    base = span_request(uid).SerializeToString()
    # Append the attribute to the span's wire bytes by re-encoding the three enclosing levels.
    request = ExportTraceServiceRequest.FromString(base)
    span = request.resource_spans[0].scope_spans[0].spans[0]
    span_bytes = span.SerializeToString() + _len_field(
        9, _len_field(1, b"deep") + _len_field(2, nested_kvlist(depth))
    )
    scope = request.resource_spans[0].scope_spans[0]
    scope_bytes = _len_field(2, span_bytes)  # ScopeSpans.spans
    if scope.HasField("scope"):
        scope_bytes = _len_field(1, scope.scope.SerializeToString()) + scope_bytes
    resource = request.resource_spans[0]
    resource_bytes = _len_field(1, resource.resource.SerializeToString()) + _len_field(
        2, scope_bytes
    )
    return _len_field(1, resource_bytes)


def invalid_utf8_request() -> bytes:
    """A span request whose service name is not UTF-8 (protobuf strings must be)."""
    request = span_request("utf8")
    raw = request.SerializeToString()
    return raw.replace(b"hostile", b"host\xff\xfe\xfd", 1)


def special_doubles_request(uid: str) -> ExportTraceServiceRequest:
    return span_request(
        uid,
        attributes=[
            KeyValue(key="nan", value=AnyValue(double_value=math.nan)),
            KeyValue(key="inf", value=AnyValue(double_value=math.inf)),
            KeyValue(key="ninf", value=AnyValue(double_value=-math.inf)),
        ],
    )


def special_doubles_metrics() -> ExportMetricsServiceRequest:
    request = ExportMetricsServiceRequest()
    resource = request.resource_metrics.add()
    resource.resource.attributes.add(key="service.name").value.string_value = "hostile"
    metric = resource.scope_metrics.add().metrics.add()
    metric.name = "weird"
    for value in (math.nan, math.inf, -math.inf):
        point = metric.gauge.data_points.add()
        point.time_unix_nano = time.time_ns()
        point.as_double = value
    return request


def wide_span_request(uid: str, attributes: int) -> ExportTraceServiceRequest:
    return span_request(
        uid,
        attributes=[
            KeyValue(key=f"wide.key{i}", value=AnyValue(int_value=i)) for i in range(attributes)
        ],
    )


def json_span(uid: str, start: str, end: str) -> bytes:
    """OTLP/JSON with the given (text) timestamps, e.g. negative ones."""
    body = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "hostile"}}]
                },
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": random.randbytes(16).hex(),
                                "spanId": random.randbytes(8).hex(),
                                "name": "json",
                                "startTimeUnixNano": start,
                                "endTimeUnixNano": end,
                                "attributes": [{"key": "test.uid", "value": {"stringValue": uid}}],
                            }
                        ]
                    }
                ],
            }
        ]
    }
    return json.dumps(body).encode()


def deep_json(depth: int) -> bytes:
    value: dict[str, object] = {"stringValue": "leaf"}
    for _ in range(depth):
        value = {"kvlistValue": {"values": [{"key": "k", "value": value}]}}
    text = (
        json.dumps(
            {
                "resourceSpans": [
                    {"scopeSpans": [{"spans": [{"attributes": [{"key": "deep", "value": value}]}]}]}
                ]
            }
        )
        if depth < 500
        else None
    )
    if text is not None:
        return text.encode()
    # json.dumps itself recurses: write the nesting as text.
    head = '{"kvlistValue": {"values": [{"key": "k", "value": ' * depth
    tail = "}]}}" * depth
    inner = head + '{"stringValue": "leaf"}' + tail
    return (
        '{"resourceSpans": [{"scopeSpans": [{"spans": [{"attributes": [{"key": "deep", "value": '
        + inner
        + "}]}]}]}]}"
    ).encode()


def gzip_bomb(inflated_bytes: int) -> bytes:
    """A small gzip body that inflates to ``inflated_bytes`` zero bytes."""
    chunk = gzip.compress(b"\0" * (16 * 1024 * 1024), compresslevel=9)
    return chunk * max(1, inflated_bytes // (16 * 1024 * 1024))


# -- fuzzing --------------------------------------------------------------------------------


def corpus() -> list[tuple[str, bytes]]:
    """Valid requests of every signal, as (signal name, protobuf bytes)."""
    from tests.lake.otlp_records import logs_request, metrics_request, spans_request

    traces = spans_request("fuzz", range(5))
    traces.resource_spans[0].scope_spans[0].spans[0].events.add(name="e", time_unix_nano=1)
    link = traces.resource_spans[0].scope_spans[0].spans[1].links.add()
    link.trace_id, link.span_id = random.Random(1).randbytes(16), random.Random(2).randbytes(8)
    logs = logs_request("fuzz", range(5))
    logs.resource_logs[0].scope_logs[0].log_records[0].body.kvlist_value.values.add(
        key="k"
    ).value.array_value.values.add(double_value=1.5)
    metrics = metrics_request("fuzz", range(5))
    histogram = metrics.resource_metrics[0].scope_metrics[0].metrics.add(name="h")
    point = histogram.histogram.data_points.add(count=3, sum=4.5, time_unix_nano=1)
    point.bucket_counts.extend([1, 2])
    point.explicit_bounds.append(1.0)
    return [
        ("traces", traces.SerializeToString()),
        ("logs", logs.SerializeToString()),
        ("metrics", metrics.SerializeToString()),
        ("traces", ExportTraceServiceRequest().SerializeToString()),
        ("logs", ExportLogsServiceRequest().SerializeToString()),
    ]


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One to four random edits: bit flips, byte changes, inserts, deletes, splices, varints."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(7)
        pos = rng.randrange(len(buf) + 1)
        if op == 0 and buf:
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        elif op == 2:
            buf[pos:pos] = rng.randbytes(rng.randint(1, 16))
        elif op == 3 and buf:
            del buf[pos : pos + rng.randint(1, 16)]
        elif op == 4:
            buf = buf[: rng.randrange(len(buf) + 1)]
        elif op == 5 and buf:
            start = rng.randrange(len(buf))
            buf[pos:pos] = buf[start : start + rng.randint(1, 64)]
        else:
            # A huge or negative-looking varint where a length or number was.
            buf[pos:pos] = encode_varint(rng.choice([0, 1, 2**31, 2**63, 2**64 - 1]))
    return bytes(buf)


def mutate_json(text: bytes, rng: random.Random) -> bytes:
    """Mutations of OTLP/JSON: text edits, or structural swaps of values for odd ones."""
    if rng.random() < 0.5:
        return mutate(text, rng)
    odd = [None, -1, 2**70, 1e308, "NaN", "-5", "zz", [], {}, True, "\ud800", "a" * 1000]
    doc = json.loads(text)

    def walk(node: object) -> object:
        if isinstance(node, dict):
            return {
                k: (rng.choice(odd) if rng.random() < 0.15 else walk(v)) for k, v in node.items()
            }
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return json.dumps(walk(doc)).encode("utf-8", "surrogatepass")


# -- well-formed requests with extreme values -----------------------------------------------

_EXTREMES: dict[int, list[object]] = {
    FieldDescriptor.TYPE_FIXED64: [0, 1, 2**63 - 1, 2**63, 2**64 - 1, 1_795_000_000_000_000_000],
    FieldDescriptor.TYPE_UINT64: [0, 1, 2**63, 2**64 - 1],
    FieldDescriptor.TYPE_INT64: [0, -1, 2**63 - 1, -(2**63)],
    FieldDescriptor.TYPE_SINT64: [0, -1, 2**63 - 1, -(2**63)],
    FieldDescriptor.TYPE_SFIXED64: [0, -1, 2**63 - 1, -(2**63)],
    FieldDescriptor.TYPE_INT32: [0, -1, 2**31 - 1, -(2**31)],
    FieldDescriptor.TYPE_SINT32: [0, -1, 2**31 - 1, -(2**31)],
    FieldDescriptor.TYPE_UINT32: [0, 2**32 - 1],
    FieldDescriptor.TYPE_FIXED32: [0, 2**32 - 1],
    FieldDescriptor.TYPE_DOUBLE: [0.0, -0.0, math.nan, math.inf, -math.inf, 1e308, 5e-324],
    FieldDescriptor.TYPE_FLOAT: [0.0, math.nan, math.inf],
    FieldDescriptor.TYPE_BOOL: [True, False],
    FieldDescriptor.TYPE_STRING: ["", "a", "\u0000", "\u00e9\u00e9", "x" * 3000, "\U0001f600"],
    FieldDescriptor.TYPE_BYTES: [b"", b"\x00" * 8, b"\xff" * 16, b"abc", bytes(range(32))],
    FieldDescriptor.TYPE_ENUM: [0, 1, 2, 5, 2**31 - 1, -1],
}


def extreme_message(message: Any, rng: random.Random, depth: int = 0) -> Any:
    """Fill a protobuf message at random with extreme values of every field type: unsigned
    counts and times past int64, NaN and infinities, empty and odd strings and ids."""
    for f in message.DESCRIPTOR.fields:
        if rng.random() < 0.35:
            continue
        if f.is_repeated:
            for _ in range(rng.choice((0, 1, 2, 3))):
                if f.type == FieldDescriptor.TYPE_MESSAGE:
                    if depth < 8:
                        extreme_message(getattr(message, f.name).add(), rng, depth + 1)
                else:
                    getattr(message, f.name).append(rng.choice(_EXTREMES[f.type]))
        elif f.type == FieldDescriptor.TYPE_MESSAGE:
            if depth < 8:
                extreme_message(getattr(message, f.name), rng, depth + 1)
        else:
            setattr(message, f.name, rng.choice(_EXTREMES[f.type]))
    return message
