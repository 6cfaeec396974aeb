"""Decode OTLP export requests into the few facts the detectors use (no I/O).

A span counts as a request when it is a SERVER or CONSUMER span or a root span; a request with
status ERROR is an error. Error signatures come from ``exception.type``/``exception.message``
attributes on log records and on span events named ``exception`` (the OpenTelemetry semantic
conventions for recorded exceptions).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from agents.detection.signature import ErrorSignature, error_signature

UNKNOWN_SERVICE = "unknown_service"
_REQUEST_KINDS = (Span.SPAN_KIND_SERVER, Span.SPAN_KIND_CONSUMER)
#: OTLP severity_number ranges (1-4 TRACE ... 21-24 FATAL).
SEVERITIES = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
_BODY_CHARS = 300


@dataclass(frozen=True)
class SpanFact:
    """What one span tells the detectors."""

    service: str
    time_us: int
    duration_ms: float
    is_request: bool
    is_error: bool
    trace_id: str
    signatures: tuple[ErrorSignature, ...] = ()


@dataclass(frozen=True)
class LogFact:
    """What one log record tells the detectors."""

    service: str
    time_us: int
    severity: str
    trace_id: str
    span_id: str
    body: str
    signature: ErrorSignature | None = None


def _text(value: AnyValue) -> str:
    which = value.WhichOneof("value")
    if which is None:
        return ""
    if which == "bytes_value":
        return value.bytes_value.hex()
    if which in ("array_value", "kvlist_value"):
        return str(getattr(value, which)).replace("\n", " ")
    return str(getattr(value, which))


def _attrs(kvs: Iterable[KeyValue]) -> dict[str, str]:
    return {kv.key: _text(kv.value) for kv in kvs}


def _service(resource_attrs: dict[str, str]) -> str:
    return resource_attrs.get("service.name") or UNKNOWN_SERVICE


def _signature(attrs: dict[str, str]) -> ErrorSignature | None:
    exc_type = attrs.get("exception.type")
    message = attrs.get("exception.message")
    if exc_type is None and message is None:
        return None
    return error_signature(exc_type or "", message or "")


def severity_of(number: int, text: str) -> str:
    """The severity bucket of a log record: from its number, else its text, else UNSPECIFIED."""
    if 1 <= number <= 24:
        return SEVERITIES[(number - 1) // 4]
    upper = text.strip().upper()
    for name in SEVERITIES:
        if upper.startswith(name[:4]):
            return name
    return "UNSPECIFIED"


def decode_spans(value: bytes) -> Iterator[SpanFact]:
    """Span facts of a serialized ExportTraceServiceRequest."""
    request = ExportTraceServiceRequest()
    request.ParseFromString(value)
    for rs in request.resource_spans:
        service = _service(_attrs(rs.resource.attributes))
        for ss in rs.scope_spans:
            for span in ss.spans:
                end = span.end_time_unix_nano or span.start_time_unix_nano
                signatures = tuple(
                    sig
                    for event in span.events
                    if event.name == "exception"
                    and (sig := _signature(_attrs(event.attributes))) is not None
                )
                yield SpanFact(
                    service=service,
                    time_us=end // 1000,
                    duration_ms=max(0, end - span.start_time_unix_nano) / 1e6,
                    is_request=span.kind in _REQUEST_KINDS or not span.parent_span_id,
                    is_error=span.status.code == Status.STATUS_CODE_ERROR,
                    trace_id=span.trace_id.hex(),
                    signatures=signatures,
                )


def decode_logs(value: bytes) -> Iterator[LogFact]:
    """Log facts of a serialized ExportLogsServiceRequest."""
    request = ExportLogsServiceRequest()
    request.ParseFromString(value)
    for rl in request.resource_logs:
        service = _service(_attrs(rl.resource.attributes))
        for sl in rl.scope_logs:
            for rec in sl.log_records:
                attrs = _attrs(rec.attributes)
                yield LogFact(
                    service=service,
                    time_us=(rec.time_unix_nano or rec.observed_time_unix_nano) // 1000,
                    severity=severity_of(rec.severity_number, rec.severity_text),
                    trace_id=rec.trace_id.hex(),
                    span_id=rec.span_id.hex(),
                    body=_text(rec.body)[:_BODY_CHARS],
                    signature=_signature(attrs),
                )
