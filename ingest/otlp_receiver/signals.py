"""The three OTLP signals as data: message classes, field names, routes and Kafka names.

Everything else in the receiver is written once and told which signal it handles through an
:class:`OtlpSignal`, so logs, traces and metrics cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from ingest.topics import Signal


@dataclass(frozen=True)
class OtlpSignal:
    """How one OTLP signal is shaped on the wire and where it goes."""

    #: OTLP's name, as in the HTTP path ``/v1/<name>``.
    name: str
    #: The emberlake signal: topic suffix and ``emberlake-signal`` header.
    kafka_signal: Signal
    request_type: type[Message]
    response_type: type[Message]
    #: Fully qualified gRPC service name.
    grpc_service: str
    #: Top-level repeated field of the request (field number 1 in all three requests).
    resource_field: str
    #: Partial-success counter in the response.
    rejected_field: str
    #: What a rejected item is called in messages to clients.
    item_noun: str

    @property
    def http_path(self) -> str:
        return f"/v1/{self.name}"

    def response(self, rejected: int, error_message: str) -> Message:
        """An export response, with partial success filled in only when something was wrong."""
        resp = self.response_type()
        if rejected or error_message:
            partial = resp.partial_success  # type: ignore[attr-defined]
            setattr(partial, self.rejected_field, rejected)
            partial.error_message = error_message
        return resp


def _service_name(module: object, service: str) -> str:
    return str(module.DESCRIPTOR.services_by_name[service].full_name)  # type: ignore[attr-defined]


LOGS = OtlpSignal(
    name="logs",
    kafka_signal="logs",
    request_type=logs_service_pb2.ExportLogsServiceRequest,
    response_type=logs_service_pb2.ExportLogsServiceResponse,
    grpc_service=_service_name(logs_service_pb2, "LogsService"),
    resource_field="resource_logs",
    rejected_field="rejected_log_records",
    item_noun="log records",
)
TRACES = OtlpSignal(
    name="traces",
    kafka_signal="spans",
    request_type=trace_service_pb2.ExportTraceServiceRequest,
    response_type=trace_service_pb2.ExportTraceServiceResponse,
    grpc_service=_service_name(trace_service_pb2, "TraceService"),
    resource_field="resource_spans",
    rejected_field="rejected_spans",
    item_noun="spans",
)
METRICS = OtlpSignal(
    name="metrics",
    kafka_signal="metrics",
    request_type=metrics_service_pb2.ExportMetricsServiceRequest,
    response_type=metrics_service_pb2.ExportMetricsServiceResponse,
    grpc_service=_service_name(metrics_service_pb2, "MetricsService"),
    resource_field="resource_metrics",
    rejected_field="rejected_data_points",
    item_noun="data points",
)

OTLP_SIGNALS: tuple[OtlpSignal, ...] = (LOGS, TRACES, METRICS)
