"""OTLP/gRPC end to end: real SDK exporters and raw clients in, a plain consumer reads Kafka."""

from __future__ import annotations

import dataclasses
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.exporter import Compression
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import format_trace_id

from emberlake.errors import ConfigError
from emberlake.settings import Settings
from ingest.otlp_receiver import ReceiverThread
from ingest.otlp_receiver.signals import LOGS, TRACES
from tests.ingest.harness import grpc_export, read_records, start_receiver
from tests.ingest.otlp_receiver.otlp_data import spans_request

pytestmark = pytest.mark.integration

TENANT = ("x-emberlake-tenant", "acme")


def _spans(payload: bytes) -> list[str]:
    req = ExportTraceServiceRequest.FromString(payload)
    return [s.name for rs in req.resource_spans for ss in rs.scope_spans for s in ss.spans]


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
def test_sdk_spans_arrive_keyed_by_tenant_and_service(
    receiver: ReceiverThread, settings: Settings, compression: Compression
) -> None:
    exporter = OTLPSpanExporter(
        endpoint=receiver.grpc_endpoint,
        insecure=True,
        compression=compression,
        headers={TENANT[0]: TENANT[1]},
    )
    provider = TracerProvider(resource=Resource.create({"service.name": "checkout"}))
    provider.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=50))
    tracer = provider.get_tracer("tests")
    for i in range(120):
        with tracer.start_as_current_span(f"GET /cart/{i}"):
            pass
    assert provider.force_flush(30_000)
    provider.shutdown()

    records = read_records(settings, "spans", count=3)
    assert len(records) == 3  # batches of 50, 50 and 20 spans
    assert {r.key for r in records} == {b"acme/checkout"}
    assert len({r.partition for r in records}) == 1
    for r in records:
        assert r.headers["emberlake-tenant"] == b"acme"
        assert r.headers["emberlake-signal"] == b"spans"
        received_us = int(r.headers["emberlake-received-us"])
        assert abs(received_us / 1e6 - time.time()) < 120
    names = [n for r in records for n in _spans(r.value)]
    assert sorted(names) == sorted(f"GET /cart/{i}" for i in range(120))


def test_sdk_logs_and_metrics_arrive(receiver: ReceiverThread, settings: Settings) -> None:
    resource = Resource.create({"service.name": "payments"})
    logs = LoggerProvider(resource=resource)
    logs.add_log_record_processor(
        SimpleLogRecordProcessor(
            OTLPLogExporter(
                endpoint=receiver.grpc_endpoint, insecure=True, compression=Compression.Gzip
            )
        )
    )
    tracing = TracerProvider(resource=resource)
    with tracing.get_tracer("tests").start_as_current_span("charge") as span:
        logs.get_logger("tests").emit(
            severity_number=SeverityNumber.ERROR, body="card declined", attributes={"n": 1}
        )
    trace_hex = format_trace_id(span.get_span_context().trace_id)
    logs.shutdown()

    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=receiver.grpc_endpoint, insecure=True),
        export_interval_millis=3_600_000,
    )
    meters = MeterProvider(resource=resource, metric_readers=[reader])
    meter = meters.get_meter("tests")
    meter.create_counter("charges").add(3, {"outcome": "declined"})
    meter.create_histogram("charge.ms").record(12.5)
    meter.create_gauge("queue.depth").set(7)
    meters.shutdown()

    (log_record,) = read_records(settings, "logs", count=1)
    assert log_record.key == b"default/payments"
    assert log_record.headers["emberlake-signal"] == b"logs"
    rec = ExportLogsServiceRequest.FromString(log_record.value).resource_logs[0]
    log = rec.scope_logs[0].log_records[0]
    assert (log.body.string_value, log.severity_number) == ("card declined", 17)
    assert log.trace_id.hex() == trace_hex

    metric_records = read_records(settings, "metrics", count=1)
    assert {r.key for r in metric_records} == {b"default/payments"}
    kinds = {
        m.name: m.WhichOneof("data")
        for r in metric_records
        for rm in ExportMetricsServiceRequest.FromString(r.value).resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
    }
    assert kinds == {"charges": "sum", "charge.ms": "histogram", "queue.depth": "gauge"}


def test_request_with_several_services_becomes_one_record_each(
    receiver: ReceiverThread, settings: Settings
) -> None:
    req = spans_request(["frontend", "payments", "frontend", None])
    reply = grpc_export(receiver.grpc_endpoint, TRACES, req.SerializeToString(), (TENANT,))
    assert reply.code == grpc.StatusCode.OK
    assert not reply.response.HasField("partial_success")
    records = {r.key: _spans(r.value) for r in read_records(settings, "spans", count=3)}
    assert records == {
        b"acme/frontend": ["span-0-0", "span-0-1", "span-0-2", "span-2-0", "span-2-1", "span-2-2"],
        b"acme/payments": ["span-1-0", "span-1-1", "span-1-2"],
        b"acme/unknown_service": ["span-3-0", "span-3-1", "span-3-2"],
    }


def test_invalid_ids_are_partial_success(receiver: ReceiverThread, settings: Settings) -> None:
    req = spans_request(["a"], spans_per_resource=4, bad=[(0, 0), (0, 3)])
    reply = grpc_export(receiver.grpc_endpoint, TRACES, req.SerializeToString())
    assert reply.code == grpc.StatusCode.OK
    assert reply.response.partial_success.rejected_spans == 2
    assert "span_id must be 8 bytes" in reply.response.partial_success.error_message
    (record,) = read_records(settings, "spans", count=1)
    assert _spans(record.value) == ["span-0-1", "span-0-2"]


def test_malformed_requests_fail_while_good_traffic_flows(
    receiver: ReceiverThread, settings: Settings
) -> None:
    good = spans_request(["good"], spans_per_resource=5).SerializeToString()
    bad_bodies = [b"\xff\xff\xff\xff", b"not protobuf at all", good[:-9]]

    def send_good(_: int) -> grpc.StatusCode:
        return grpc_export(receiver.grpc_endpoint, TRACES, good).code

    def send_bad(body: bytes) -> tuple[grpc.StatusCode, str]:
        reply = grpc_export(receiver.grpc_endpoint, TRACES, body)
        return reply.code, reply.details

    with ThreadPoolExecutor(8) as pool:
        good_codes = pool.map(send_good, range(30))
        bad_replies = pool.map(send_bad, bad_bodies * 5)
        good_codes, bad_replies = list(good_codes), list(bad_replies)
    assert set(good_codes) == {grpc.StatusCode.OK}
    assert {code for code, _ in bad_replies} == {grpc.StatusCode.INVALID_ARGUMENT}
    assert all("not a protobuf ExportTraceServiceRequest" in d for _, d in bad_replies)
    records = read_records(settings, "spans", count=30)
    assert len(records) == 30
    assert all(r.value == good for r in records)


def test_too_large_is_resource_exhausted_even_when_gzip_hides_it(settings: Settings) -> None:
    limit = 64 * 1024
    small = dataclasses.replace(settings.receiver, max_request_bytes=limit)
    receiver = start_receiver(settings.replace(receiver=small))
    try:
        big = spans_request(["a"], spans_per_resource=2000).SerializeToString()
        assert len(big) > 2 * limit
        plain = grpc_export(receiver.grpc_endpoint, TRACES, big)
        assert plain.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        gzipped = grpc_export(
            receiver.grpc_endpoint, TRACES, big, compression=grpc.Compression.Gzip
        )
        assert gzipped.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        fits = spans_request(["a"], spans_per_resource=10).SerializeToString()
        assert grpc_export(receiver.grpc_endpoint, TRACES, fits).code == grpc.StatusCode.OK
    finally:
        receiver.stop()


def test_bearer_tokens_choose_the_tenant(settings: Settings) -> None:
    secured = dataclasses.replace(settings.receiver, tokens="t0ken=acme,other=globex")
    receiver = start_receiver(settings.replace(receiver=secured))
    body = spans_request(["a"]).SerializeToString()
    try:
        missing = grpc_export(receiver.grpc_endpoint, TRACES, body)
        assert missing.code == grpc.StatusCode.UNAUTHENTICATED
        assert "Bearer" in missing.details
        wrong = grpc_export(receiver.grpc_endpoint, TRACES, body, (("authorization", "Bearer no"),))
        assert wrong.code == grpc.StatusCode.UNAUTHENTICATED
        foreign = grpc_export(
            receiver.grpc_endpoint,
            TRACES,
            body,
            (("authorization", "Bearer t0ken"), ("x-emberlake-tenant", "globex")),
        )
        assert foreign.code == grpc.StatusCode.PERMISSION_DENIED
        ok = grpc_export(receiver.grpc_endpoint, LOGS, b"", (("authorization", "Bearer t0ken"),))
        assert ok.code == grpc.StatusCode.OK
        ok = grpc_export(receiver.grpc_endpoint, TRACES, body, (("authorization", "Bearer t0ken"),))
        assert ok.code == grpc.StatusCode.OK
    finally:
        receiver.stop()
    assert [r.key for r in read_records(settings, "spans", count=1)] == [b"acme/a"]


def test_ports_in_use_are_a_clear_error(receiver: ReceiverThread, settings: Settings) -> None:
    with pytest.raises(ConfigError, match="EMBERLAKE_RECEIVER_GRPC_PORT"):
        ReceiverThread(settings).start()
    other_grpc = dataclasses.replace(settings.receiver, grpc_port=0)
    with pytest.raises(ConfigError, match="EMBERLAKE_RECEIVER_HTTP_PORT"):
        ReceiverThread(settings.replace(receiver=other_grpc)).start()
    body = spans_request(["still-serving"]).SerializeToString()
    assert grpc_export(receiver.grpc_endpoint, TRACES, body).code == grpc.StatusCode.OK
