"""OTLP requests with known ids, produced to the signal topics as the receiver would.

Every span and log record carries a unique ``seq`` attribute and an id derived from it, so tests
can check that the lake holds each exactly once with its attributes intact.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterable, Sequence

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from emberlake.settings import Settings
from ingest.kafka import KafkaSink
from ingest.topics import (
    HEADER_RECEIVED_US,
    HEADER_REQUEST_ID,
    HEADER_SIGNAL,
    HEADER_TENANT,
    Topics,
    record_key,
)

T0_NS = 1_795_000_000_000_000_000  # 2026-11-18T...


def kv(key: str, value: object) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    if isinstance(value, bytes):
        return KeyValue(key=key, value=AnyValue(bytes_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=str(value)))


def span_id_of(seq: int) -> str:
    return f"{seq:016x}"


def trace_id_of(seq: int) -> str:
    return f"{seq // 4:032x}"


def spans_request(service: str, seqs: Sequence[int]) -> ExportTraceServiceRequest:
    """One resource (service) with one span per seq; ids and attributes derived from seq."""
    request = ExportTraceServiceRequest()
    resource = request.resource_spans.add()
    resource.resource.attributes.extend([kv("service.name", service), kv("host.name", "h1")])
    scope = resource.scope_spans.add()
    scope.scope.name = "tests"
    for seq in seqs:
        span = scope.spans.add()
        span.trace_id = bytes.fromhex(trace_id_of(seq))
        span.span_id = bytes.fromhex(span_id_of(seq))
        if seq % 4:
            span.parent_span_id = bytes.fromhex(span_id_of(seq - 1))
        span.name = f"op-{seq % 7}"
        span.kind = 2
        span.start_time_unix_nano = T0_NS + seq * 1_000_000
        span.end_time_unix_nano = T0_NS + seq * 1_000_000 + 2_500_000
        span.attributes.extend(
            [kv("seq", seq), kv("http.route", f"/r/{seq % 5}"), kv("ok", seq % 2 == 0)]
        )
    return request


def logs_request(service: str, seqs: Sequence[int]) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    resource = request.resource_logs.add()
    resource.resource.attributes.extend([kv("service.name", service)])
    scope = resource.scope_logs.add()
    for seq in seqs:
        record = scope.log_records.add()
        record.time_unix_nano = T0_NS + seq * 1_000_000
        record.severity_number = 9
        record.severity_text = "INFO"
        record.body.string_value = f"message {seq}"
        record.attributes.extend([kv("seq", seq)])
    return request


def metrics_request(service: str, seqs: Sequence[int]) -> ExportMetricsServiceRequest:
    request = ExportMetricsServiceRequest()
    resource = request.resource_metrics.add()
    resource.resource.attributes.extend([kv("service.name", service)])
    scope = resource.scope_metrics.add()
    metric = scope.metrics.add()
    metric.name = "requests"
    metric.sum.aggregation_temporality = 2
    metric.sum.is_monotonic = True
    for seq in seqs:
        point = metric.sum.data_points.add()
        point.time_unix_nano = T0_NS + seq * 1_000_000
        point.as_int = seq
        point.attributes.extend([kv("seq", seq)])
    return request


def produce(
    settings: Settings,
    signal: str,
    items: Iterable[tuple[str, str, bytes]],
    sink: KafkaSink | None = None,
    request_ids: Sequence[str] | None = None,
) -> list[tuple[int, int]]:
    """Produce (tenant, service, value) records with the receiver's key and headers (and the
    given request ids); returns (partition, offset) of each once the broker acknowledged it."""
    own = sink is None
    sink = sink or KafkaSink(settings)
    topic = Topics(settings.kafka.topic_prefix).signal(signal)  # type: ignore[arg-type]
    items = list(items)
    ids: Sequence[str | None] = request_ids or [None] * len(items)
    futures = [
        sink.send(
            topic,
            record_key(tenant, service),
            value,
            [
                (HEADER_TENANT, tenant.encode()),
                (HEADER_SIGNAL, signal.encode()),
                (HEADER_RECEIVED_US, str(time.time_ns() // 1000).encode()),
                *([(HEADER_REQUEST_ID, request.encode())] if request else []),
            ],
        )
        for (tenant, service, value), request in zip(items, ids, strict=True)
    ]
    sink.flush(30)
    results = [f.result(timeout=30) for f in concurrent.futures.as_completed(futures)]
    if own:
        sink.close()
    return results


def seq_batches(start: int, count: int, per_request: int) -> list[list[int]]:
    return [
        list(range(i, min(i + per_request, start + count)))
        for i in range(start, start + count, per_request)
    ]
