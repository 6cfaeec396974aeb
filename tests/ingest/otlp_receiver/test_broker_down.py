"""With no broker to take the data, the receiver says "retry later" instead of acknowledging."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from emberlake.local import free_port
from emberlake.settings import KafkaSettings, ReceiverSettings, Settings
from ingest.otlp_receiver import ReceiverThread
from ingest.otlp_receiver.signals import TRACES
from ingest.otlp_receiver.status import RETRY_INFO_KEY, STATUS_DETAILS_KEY
from tests.ingest.harness import grpc_export, http_request
from tests.ingest.otlp_receiver.otlp_data import spans_request

pytestmark = pytest.mark.integration


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[ReceiverThread]:
    """A receiver whose broker address has nothing listening, with a short delivery timeout."""
    settings = Settings(
        data_dir=str(tmp_path),
        kafka=KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}", delivery_timeout_ms=1500),
        receiver=ReceiverSettings(grpc_port=free_port(), http_port=free_port()),
    )
    thread = ReceiverThread(settings, grace=1.0).start()
    yield thread
    started = time.monotonic()
    thread.stop()
    assert time.monotonic() - started < 15, "stopping hung on undeliverable records"


def test_grpc_answers_unavailable_with_retry_info(receiver: ReceiverThread) -> None:
    started = time.monotonic()
    reply = grpc_export(receiver.grpc_endpoint, TRACES, spans_request().SerializeToString())
    assert reply.code == grpc.StatusCode.UNAVAILABLE
    assert 1.0 < time.monotonic() - started < 10
    assert "broker did not take the record" in reply.details
    status = status_pb2.Status.FromString(reply.trailers[STATUS_DETAILS_KEY])
    assert status.code == grpc.StatusCode.UNAVAILABLE.value[0]
    info = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(info) and info.retry_delay.seconds > 0
    assert error_details_pb2.RetryInfo.FromString(reply.trailers[RETRY_INFO_KEY]) == info


def test_http_answers_503_with_retry_after(receiver: ReceiverThread) -> None:
    body = spans_request().SerializeToString()
    reply = http_request(
        f"{receiver.http_url}/v1/traces", body, {"Content-Type": "application/x-protobuf"}
    )
    assert reply.status == 503
    assert int(reply.headers["Retry-After"]) > 0
    assert status_pb2.Status.FromString(reply.body).code == grpc.StatusCode.UNAVAILABLE.value[0]


def test_invalid_requests_are_still_refused_at_once(receiver: ReceiverThread) -> None:
    started = time.monotonic()
    reply = grpc_export(receiver.grpc_endpoint, TRACES, b"\xff\xff")
    assert reply.code == grpc.StatusCode.INVALID_ARGUMENT
    assert time.monotonic() - started < 1.0


def test_sdk_exporter_reports_failure_not_success(receiver: ReceiverThread) -> None:
    recorded = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "checkout"}))
    provider.add_span_processor(SimpleSpanProcessor(recorded))
    with provider.get_tracer("tests").start_as_current_span("GET /cart"):
        pass
    exporter = OTLPSpanExporter(endpoint=receiver.grpc_endpoint, insecure=True, timeout=4)
    try:
        assert exporter.export(recorded.get_finished_spans()) == SpanExportResult.FAILURE
    finally:
        exporter.shutdown()
        provider.shutdown()
    # The exporter gave up mid-call (its deadline passed); the receiver must still answer.
    reply = grpc_export(
        receiver.grpc_endpoint, TRACES, spans_request().SerializeToString(), timeout=8
    )
    assert reply.code == grpc.StatusCode.UNAVAILABLE
