"""OTLP/HTTP end to end: the SDK's protobuf exporter, hand-built OTLP/JSON, and bad requests."""

from __future__ import annotations

import dataclasses
import gzip
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from emberlake.settings import Settings
from ingest.otlp_receiver import ReceiverThread
from ingest.otlp_receiver.otlp_json import request_to_json
from tests.ingest.harness import http_request, read_records, start_receiver
from tests.ingest.otlp_receiver.otlp_data import logs_request, spans_request

pytestmark = pytest.mark.integration

PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}


def _span_names(payload: bytes) -> list[str]:
    req = ExportTraceServiceRequest.FromString(payload)
    return [s.name for rs in req.resource_spans for ss in rs.scope_spans for s in ss.spans]


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
def test_sdk_http_exporters_deliver_every_signal(
    receiver: ReceiverThread, settings: Settings, compression: Compression
) -> None:
    resource = Resource.create({"service.name": "frontend"})
    headers = {"x-emberlake-tenant": "acme"}
    tracing = TracerProvider(resource=resource)
    tracing.add_span_processor(
        SimpleSpanProcessor(
            OTLPSpanExporter(
                endpoint=f"{receiver.http_url}/v1/traces", headers=headers, compression=compression
            )
        )
    )
    for i in range(3):
        with tracing.get_tracer("tests").start_as_current_span(f"GET /home/{i}"):
            pass
    tracing.shutdown()
    logs = LoggerProvider(resource=resource)
    logs.add_log_record_processor(
        SimpleLogRecordProcessor(
            OTLPLogExporter(
                endpoint=f"{receiver.http_url}/v1/logs", headers=headers, compression=compression
            )
        )
    )
    logs.get_logger("tests").emit(body="rendered home page")
    logs.shutdown()
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(
            endpoint=f"{receiver.http_url}/v1/metrics", headers=headers, compression=compression
        ),
        export_interval_millis=3_600_000,
    )
    meters = MeterProvider(resource=resource, metric_readers=[reader])
    meters.get_meter("tests").create_counter("pages").add(1)
    meters.shutdown()

    spans = read_records(settings, "spans", count=3)
    assert sorted(n for r in spans for n in _span_names(r.value)) == [
        "GET /home/0",
        "GET /home/1",
        "GET /home/2",
    ]
    assert {r.key for r in spans} == {b"acme/frontend"}
    (log,) = read_records(settings, "logs", count=1)
    body = ExportLogsServiceRequest.FromString(log.value).resource_logs[0].scope_logs[0]
    assert body.log_records[0].body.string_value == "rendered home page"
    metrics = read_records(settings, "metrics", count=1)
    assert [r.headers["emberlake-signal"] for r in metrics] == [b"metrics"]


@pytest.mark.parametrize("gzipped", [False, True])
def test_json_request_gets_a_json_answer(
    receiver: ReceiverThread, settings: Settings, gzipped: bool
) -> None:
    req = spans_request(["a", "b"], spans_per_resource=2)
    body = request_to_json(req)
    headers = dict(JSON)
    if gzipped:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    reply = http_request(f"{receiver.http_url}/v1/traces", body, headers)
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("application/json")
    assert json.loads(reply.body) == {}
    records = {r.key: r.value for r in read_records(settings, "spans", count=2)}
    assert set(records) == {b"default/a", b"default/b"}
    joined = records[b"default/a"] + records[b"default/b"]
    assert ExportTraceServiceRequest.FromString(joined) == req


def test_json_partial_success(receiver: ReceiverThread, settings: Settings) -> None:
    doc = json.loads(request_to_json(logs_request(["a"], records_per_resource=3)))
    doc["resourceLogs"][0]["scopeLogs"][0]["logRecords"][1]["traceId"] = "zz-not-hex"
    doc["resourceLogs"][0]["scopeLogs"][0]["logRecords"][2]["spanId"] = "abcd"
    reply = http_request(f"{receiver.http_url}/v1/logs", json.dumps(doc).encode(), JSON)
    assert reply.status == 200
    partial = json.loads(reply.body)["partialSuccess"]
    assert partial["rejectedLogRecords"] == "2"
    assert "log trace_id must be empty or 16 bytes, got 1 bytes" in partial["errorMessage"]
    (record,) = read_records(settings, "logs", count=1)
    kept = ExportLogsServiceRequest.FromString(record.value).resource_logs[0]
    assert [r.body.string_value for r in kept.scope_logs[0].log_records] == ["log-0-0"]


def test_protobuf_partial_success(receiver: ReceiverThread) -> None:
    body = spans_request(["a"], bad=[(0, 1)]).SerializeToString()
    reply = http_request(f"{receiver.http_url}/v1/traces", body, PROTOBUF)
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "application/x-protobuf"
    assert ExportTraceServiceResponse.FromString(reply.body).partial_success.rejected_spans == 1


def _status(reply_body: bytes, as_json: bool) -> tuple[int, str]:
    if as_json:
        doc = json.loads(reply_body)
        return doc["code"], doc["message"]
    status = status_pb2.Status.FromString(reply_body)
    return status.code, status.message


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "message"),
    [
        ("/v1/traces", b"\xff\xff\xff", PROTOBUF, 400, "not a protobuf ExportTraceServiceRequest"),
        ("/v1/logs", b'{"resourceLogs": [', JSON, 400, "not valid JSON"),
        ("/v1/metrics", b'{"resourceMetrics": 7}', JSON, 400, "not an OTLP/JSON"),
        (
            "/v1/traces",
            gzip.compress(spans_request().SerializeToString())[:-10],
            {**PROTOBUF, "Content-Encoding": "gzip"},
            400,
            "gzip body is truncated",
        ),
        ("/v1/traces", b"<xml/>", {"Content-Type": "text/xml"}, 415, "content type 'text/xml'"),
        ("/v1/traces", b"x", {**PROTOBUF, "Content-Encoding": "br"}, 415, "encoding 'br'"),
    ],
)
def test_malformed_requests(
    receiver: ReceiverThread,
    path: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
    message: str,
) -> None:
    reply = http_request(receiver.http_url + path, body, headers)
    assert reply.status == status
    as_json = headers["Content-Type"] != "application/x-protobuf"
    code, text = _status(reply.body, as_json)
    assert code == (3 if status in (400, 415) else 0)
    assert message in text


def test_bad_requests_do_not_disturb_good_ones(
    receiver: ReceiverThread, settings: Settings
) -> None:
    good = spans_request(["good"]).SerializeToString()
    url = f"{receiver.http_url}/v1/traces"
    bad = [
        (b"garbage", PROTOBUF),
        (b"{", JSON),
        (gzip.compress(good)[:20], {**PROTOBUF, "Content-Encoding": "gzip"}),
        (good, {"Content-Type": "text/plain"}),
    ]
    with ThreadPoolExecutor(8) as pool:
        good_replies = pool.map(lambda _: http_request(url, good, PROTOBUF).status, range(25))
        bad_replies = pool.map(lambda b: http_request(url, b[0], b[1]).status, bad * 4)
        goods, bads = list(good_replies), list(bad_replies)
    assert goods == [200] * 25
    assert sorted(set(bads)) == [400, 415]
    records = read_records(settings, "spans", count=25)
    assert len(records) == 25 and all(r.value == good for r in records)


def test_limits_on_raw_and_inflated_size(settings: Settings) -> None:
    small = dataclasses.replace(settings.receiver, max_request_bytes=32 * 1024)
    receiver = start_receiver(settings.replace(receiver=small))
    url = f"{receiver.http_url}/v1/traces"
    try:
        big = spans_request(["a"], spans_per_resource=1000).SerializeToString()
        assert http_request(url, big, PROTOBUF).status == 413
        bomb = gzip.compress(b"\0" * 20_000_000)
        reply = http_request(url, bomb, {**PROTOBUF, "Content-Encoding": "gzip"})
        assert reply.status == 413
        assert "inflates to more than" in _status(reply.body, False)[1]
        fits = gzip.compress(spans_request(["a"], spans_per_resource=5).SerializeToString())
        assert http_request(url, fits, {**PROTOBUF, "Content-Encoding": "gzip"}).status == 200
    finally:
        receiver.stop()


def test_auth_statuses(settings: Settings) -> None:
    secured = dataclasses.replace(settings.receiver, tokens="t0ken=acme")
    receiver = start_receiver(settings.replace(receiver=secured))
    url = f"{receiver.http_url}/v1/traces"
    body = spans_request(["a"]).SerializeToString()
    try:
        assert http_request(url, body, PROTOBUF).status == 401
        foreign = {**PROTOBUF, "Authorization": "Bearer t0ken", "x-emberlake-tenant": "globex"}
        assert http_request(url, body, foreign).status == 403
        assert http_request(url, body, {**PROTOBUF, "Authorization": "Bearer t0ken"}).status == 200
    finally:
        receiver.stop()
    assert [r.key for r in read_records(settings, "spans", count=1)] == [b"acme/a"]


def test_health_and_unknown_routes(receiver: ReceiverThread) -> None:
    http_request(f"{receiver.http_url}/v1/logs", b"", PROTOBUF)
    health = http_request(f"{receiver.http_url}/healthz", method="GET")
    assert health.status == 200
    doc = json.loads(health.body)
    assert doc["status"] == "ok" and doc["requests"] == {"logs": 1}
    assert http_request(f"{receiver.http_url}/v1/profiles", b"", PROTOBUF).status == 404
    assert http_request(f"{receiver.http_url}/v1/traces", method="GET").status == 405
