"""OTLP requests -> Arrow rows in the column contract (pure, no services)."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from emberlake.errors import InvalidRequest
from lake.flatten import (
    DOC_KEY,
    LogColumns,
    SpanColumns,
    flatten_logs,
    flatten_metrics,
    flatten_spans,
    schema_for,
)
from lake.flatten.wire import FullTraceRequest, LeanTraceRequest
from tests.lake.otlp_records import kv

T = 1_700_000_000_123_456_789
UTC = dt.UTC


def _span_request() -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.extend([kv("service.name", "checkout"), kv("pid", 42)])
    ss = rs.scope_spans.add()
    ss.scope.name = "lib"
    ss.scope.version = "1.0"
    root = ss.spans.add()
    root.trace_id = bytes(range(16))
    root.span_id = bytes(range(8))
    root.name = "GET /"
    root.kind = 2
    root.start_time_unix_nano = T
    root.end_time_unix_nano = T + 1_500_000
    root.status.code = 2
    root.status.message = "boom"
    root.trace_state = "k=v"
    root.attributes.extend(
        [
            kv("s", "text"),
            kv("i", -7),
            kv("d", 1.25),
            kv("b", True),
            kv("raw", b"\x01\xab"),
            KeyValue(
                key="arr",
                value=AnyValue(
                    array_value=ArrayValue(
                        values=[AnyValue(int_value=1), AnyValue(string_value="x")]
                    )
                ),
            ),
            KeyValue(
                key="kvl",
                value=AnyValue(kvlist_value=KeyValueList(values=[kv("a", 1), kv("b", "two")])),
            ),
            KeyValue(key="empty", value=AnyValue()),
        ]
    )
    event = root.events.add()
    event.name = "exception"
    event.time_unix_nano = T + 1000
    event.attributes.extend([kv("exception.type", "ValueError"), kv("n", 3)])
    root.events.add(name="retry", time_unix_nano=T + 2000)
    link = root.links.add()
    link.trace_id = bytes([0xAA] * 16)
    link.span_id = bytes([0xBB] * 8)
    link.attributes.extend([kv("why", "retry")])
    child = ss.spans.add()
    child.trace_id = bytes(range(16))
    child.span_id = bytes([9] * 8)
    child.parent_span_id = bytes(range(8))
    child.name = "SELECT"
    child.kind = 9  # not a known kind: kept as a name, not dropped
    child.start_time_unix_nano = T
    child.end_time_unix_nano = T
    return request


def test_spans_follow_the_contract() -> None:
    table = flatten_spans([_span_request()])
    assert table.schema == schema_for("spans")
    root, child = table.to_pylist()
    assert root["trace_id"] == bytes(range(16)).hex() and len(root["trace_id"]) == 32
    assert root["span_id"] == "0001020304050607"
    assert root["parent_span_id"] is None
    assert child["parent_span_id"] == "0001020304050607"
    assert root["start_time"] == dt.datetime.fromtimestamp(T // 1000 / 1e6, tz=UTC)
    assert root["duration_ms"] == pytest.approx(1.5)
    assert (root["kind"], child["kind"]) == ("SERVER", "UNKNOWN_9")
    assert (root["status_code"], root["status_message"]) == ("ERROR", "boom")
    assert (child["status_code"], child["status_message"]) == ("UNSET", None)
    assert root["trace_state"] == "k=v" and child["trace_state"] is None
    assert root["service_name"] == "checkout"
    assert dict(root["resource_attributes"]) == {"service.name": "checkout", "pid": "42"}
    assert (root["scope_name"], root["scope_version"]) == ("lib", "1.0")
    attrs = dict(root["attributes"])
    assert attrs["s"] == "text" and attrs["i"] == "-7" and attrs["d"] == "1.25"
    assert attrs["b"] == "True" and attrs["raw"] == "01ab"
    assert json.loads(attrs["arr"]) == [1, "x"]
    assert json.loads(attrs["kvl"]) == {"a": 1, "b": "two"}
    assert attrs["empty"] is None
    events = json.loads(root["events"])
    assert [e["name"] for e in events] == ["exception", "retry"]
    assert events[0]["attributes"] == {"exception.type": "ValueError", "n": 3}
    assert events[0]["time"].startswith("2023-11-14T22:13:20.123457")
    links = json.loads(root["links"])
    assert links == [
        {
            "trace_id": "aa" * 16,
            "span_id": "bb" * 8,
            "trace_state": None,
            "attributes": {"why": "retry"},
        }
    ]
    assert json.loads(child["events"]) == [] and dict(child["attributes"]) == {}


def test_every_column_has_a_provenance_doc() -> None:
    for signal in ("logs", "spans", "metrics"):
        for f in schema_for(signal):
            assert f.metadata and f.metadata[DOC_KEY], f"{signal}.{f.name} has no doc"
    assert schema_for("spans").field("service_name").metadata[DOC_KEY] == (
        b"resource attribute service.name"
    )


def test_missing_fields_become_nulls_and_defaults() -> None:
    request = ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.add()  # an empty span, no resource
    row = flatten_spans([request]).to_pylist()[0]
    assert row["service_name"] == "unknown_service"
    assert row["trace_id"] == "" and row["parent_span_id"] is None
    assert row["scope_name"] is None and row["status_code"] == "UNSET"
    assert row["kind"] == "UNSPECIFIED" and row["duration_ms"] == 0.0


def test_lean_mirrors_read_the_same_wire_bytes() -> None:
    data = _span_request().SerializeToString()
    lean = LeanTraceRequest.FromString(data)
    span = lean.resource_spans[0].scope_spans[0].spans[0]
    assert span.name == "GET /" and len(span.attributes) == 8
    # The hot mirror only tells that there are events (it keeps the last one) ...
    assert Span.Event.FromString(span.events).name == "retry"
    assert not lean.resource_spans[0].scope_spans[0].spans[1].events
    # ... the full mirror keeps everything, byte for byte.
    assert FullTraceRequest.FromString(data).SerializeToString() == data


def test_malformed_request_is_rejected_and_leaves_columns_untouched() -> None:
    columns = SpanColumns()
    good = _span_request().SerializeToString()
    assert columns.add(good) == 2
    with pytest.raises(InvalidRequest):
        columns.add(b"\x0a\xff\xff\xff\xff\x0f garbage")
    # A request that parses at the top but holds an invalid attribute (bad UTF-8 key).
    bad_attr = ExportTraceServiceRequest.FromString(good)
    bad_attr.resource_spans[0].scope_spans[0].spans[0].attributes.add(key="ok")
    raw = bytearray(bad_attr.SerializeToString())
    raw[raw.rindex(b"ok")] = 0xFF
    with pytest.raises(InvalidRequest):
        columns.add(bytes(raw))
    assert columns.add(good) == 2
    table = columns.to_arrow()
    assert table.num_rows == 4
    assert [len(a) for a in table.column("attributes").to_pylist()] == [8, 0, 8, 0]


def test_logs_follow_the_contract() -> None:
    request = ExportLogsServiceRequest()
    rl = request.resource_logs.add()
    rl.resource.attributes.extend([kv("service.name", "api")])
    scope = rl.scope_logs.add()
    a = scope.log_records.add()
    a.time_unix_nano = T
    a.observed_time_unix_nano = T + 5000
    a.severity_number = 17
    a.severity_text = "ERROR"
    a.body.string_value = "it broke"
    a.trace_id = bytes([1] * 16)
    a.span_id = bytes([2] * 8)
    a.flags = 1
    a.event_name = "app.crash"
    a.attributes.extend([kv("user", "u1")])
    b = scope.log_records.add()  # no time: falls back to the observed time; structured body
    b.observed_time_unix_nano = T + 9000
    b.body.kvlist_value.values.extend([kv("k", 1)])
    table = flatten_logs([request])
    assert table.schema == schema_for("logs")
    ra, rb = table.to_pylist()
    assert ra["time"] == dt.datetime.fromtimestamp(T // 1000 / 1e6, tz=UTC)
    assert (ra["severity_number"], ra["severity_text"], ra["body"]) == (17, "ERROR", "it broke")
    assert (ra["trace_id"], ra["span_id"]) == ("01" * 16, "02" * 8)
    assert (ra["flags"], ra["event_name"]) == (1, "app.crash")
    assert dict(ra["attributes"]) == {"user": "u1"} and ra["service_name"] == "api"
    assert rb["time"] == rb["observed_time"]
    assert json.loads(rb["body"]) == {"k": 1}
    assert rb["trace_id"] is None and rb["severity_text"] is None


def test_log_body_kinds() -> None:
    request = ExportLogsServiceRequest()
    scope = request.resource_logs.add().scope_logs.add()
    for value in (
        AnyValue(int_value=5),
        AnyValue(bool_value=False),
        AnyValue(bytes_value=b"\x0f"),
        AnyValue(),
    ):
        scope.log_records.add(time_unix_nano=T, body=value)
    bodies = flatten_logs([request]).column("body").to_pylist()
    assert bodies == ["5", "false", '"0f"', None]


def _metrics_request() -> ExportMetricsServiceRequest:
    request = ExportMetricsServiceRequest()
    rm = request.resource_metrics.add()
    rm.resource.attributes.extend([kv("service.name", "db")])
    sm = rm.scope_metrics.add()
    gauge = sm.metrics.add(name="temp", unit="C", description="temperature")
    gauge.gauge.data_points.add(time_unix_nano=T, as_double=21.5).attributes.extend(
        [kv("room", "a")]
    )
    counter = sm.metrics.add(name="reqs")
    counter.sum.aggregation_temporality = 2
    counter.sum.is_monotonic = True
    counter.sum.data_points.add(time_unix_nano=T, start_time_unix_nano=T - 10**9, as_int=7)
    hist = sm.metrics.add(name="latency")
    hist.histogram.aggregation_temporality = 1
    hp = hist.histogram.data_points.add(time_unix_nano=T, count=6, sum=12.0, min=0.5, max=4.0)
    hp.bucket_counts.extend([1, 2, 3])
    hp.explicit_bounds.extend([1.0, 2.0])
    exp = sm.metrics.add(name="size")
    exp.exponential_histogram.aggregation_temporality = 2
    ep = exp.exponential_histogram.data_points.add(time_unix_nano=T, count=5, scale=3, zero_count=1)
    ep.positive.offset = -2
    ep.positive.bucket_counts.extend([1, 2])
    ep.negative.offset = 4
    ep.negative.bucket_counts.extend([1])
    summary = sm.metrics.add(name="rt")
    sp = summary.summary.data_points.add(time_unix_nano=T, count=10, sum=99.0)
    sp.quantile_values.add(quantile=0.5, value=8.0)
    sp.quantile_values.add(quantile=0.99, value=20.0)
    return request


def test_metrics_all_five_point_types() -> None:
    table = flatten_metrics([_metrics_request()])
    assert table.schema == schema_for("metrics")
    rows = {r["metric_name"]: r for r in table.to_pylist()}
    g, s, h, e, q = (rows[n] for n in ("temp", "reqs", "latency", "size", "rt"))
    assert (g["metric_type"], g["value"], g["metric_unit"], g["metric_description"]) == (
        "gauge",
        21.5,
        "C",
        "temperature",
    )
    assert g["is_monotonic"] is None and g["aggregation_temporality"] is None
    assert g["start_time"] is None and dict(g["attributes"]) == {"room": "a"}
    assert (s["metric_type"], s["value"], s["is_monotonic"]) == ("sum", 7.0, True)
    assert s["aggregation_temporality"] == "CUMULATIVE"
    assert s["start_time"] == dt.datetime.fromtimestamp((T - 10**9) // 1000 / 1e6, tz=UTC)
    assert (h["metric_type"], h["count"], h["sum"], h["min"], h["max"]) == (
        "histogram",
        6,
        12.0,
        0.5,
        4.0,
    )
    assert h["bucket_counts"] == [1, 2, 3] and h["explicit_bounds"] == [1.0, 2.0]
    assert h["aggregation_temporality"] == "DELTA" and h["value"] is None
    assert (e["metric_type"], e["scale"], e["zero_count"], e["count"]) == (
        "exponential_histogram",
        3,
        1,
        5,
    )
    assert (e["positive_offset"], e["positive_bucket_counts"]) == (-2, [1, 2])
    assert (e["negative_offset"], e["negative_bucket_counts"]) == (4, [1])
    assert e["sum"] is None and e["min"] is None
    assert (q["metric_type"], q["count"], q["sum"]) == ("summary", 10, 99.0)
    assert q["quantiles"] == [0.5, 0.99] and q["quantile_values"] == [8.0, 20.0]
    assert all(r["service_name"] == "db" for r in rows.values())


def test_accumulators_concatenate_requests_in_order() -> None:
    columns = LogColumns()
    for i in range(3):
        request = ExportLogsServiceRequest()
        rl = request.resource_logs.add()
        rl.resource.attributes.extend([kv("service.name", f"s{i}")])
        rl.scope_logs.add().log_records.add(time_unix_nano=T, body=AnyValue(string_value=str(i)))
        assert columns.add(request.SerializeToString()) == 1
    table = columns.to_arrow()
    assert table.column("service_name").to_pylist() == ["s0", "s1", "s2"]
    assert table.column("body").to_pylist() == ["0", "1", "2"]
    assert isinstance(table.column("attributes").type, pa.MapType)


def test_kind_columns_for_schema_inference() -> None:
    from lake.schema_inference.types import KIND_CODE

    columns = SpanColumns(kinds=True)
    columns.add(_span_request().SerializeToString())
    table = columns.to_arrow()
    kinds = table.column("attributes__kinds").to_pylist()[0]
    keys = [k for k, _ in table.column("attributes").to_pylist()[0]]
    assert dict(zip(keys, kinds, strict=True)) == {
        "s": KIND_CODE["string"],
        "i": KIND_CODE["int"],
        "d": KIND_CODE["double"],
        "b": KIND_CODE["bool"],
        "raw": KIND_CODE["bytes"],
        "arr": KIND_CODE["array"],
        "kvl": KIND_CODE["kvlist"],
        "empty": KIND_CODE["empty"],
    }
    assert table.column("resource_attributes__kinds").to_pylist()[0] == [
        KIND_CODE["string"],
        KIND_CODE["int"],
    ]
    assert "attributes__kinds" not in SpanColumns().to_arrow().column_names
