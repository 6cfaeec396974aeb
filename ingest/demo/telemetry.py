"""Each demo service's OpenTelemetry SDK providers, and the report of what arrived.

A service gets its own tracer, logger and meter providers with OTLP/gRPC exporters, as its own
process would. Span and log exporters are wrapped to count what the receiver acknowledged, so the
demo can say what arrived.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry._logs import SeverityNumber
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    LogRecordExporter,
    LogRecordExportResult,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult


@dataclass
class DemoReport:
    """What the demo sent and what the receiver acknowledged."""

    traces: int = 0
    failed_payments: int = 0
    spans_acked: int = 0
    spans_failed: int = 0
    logs_acked: int = 0
    logs_failed: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not (self.spans_failed or self.logs_failed)


class _CountingSpanExporter(SpanExporter):
    """Counts what the receiver acknowledged, so the demo can say what arrived."""

    def __init__(self, inner: SpanExporter, report: DemoReport):
        self.inner = inner
        self.report = report

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = self.inner.export(spans)
        if result == SpanExportResult.SUCCESS:
            self.report.spans_acked += len(spans)
        else:
            self.report.spans_failed += len(spans)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class _CountingLogExporter(LogRecordExporter):
    def __init__(self, inner: LogRecordExporter, report: DemoReport):
        self.inner = inner
        self.report = report

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        result = self.inner.export(batch)
        if result == LogRecordExportResult.SUCCESS:
            self.report.logs_acked += len(batch)
        else:
            self.report.logs_failed += len(batch)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


@dataclass
class ServiceTelemetry:
    """One service's providers and instruments, as its own process would hold them."""

    name: str
    version: str
    endpoint: str
    headers: dict[str, str]
    report: DemoReport
    providers: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        resource = Resource.create(
            {
                "service.name": self.name,
                "service.version": self.version,
                "service.namespace": "shop",
                "deployment.environment.name": "demo",
                "host.name": f"{self.name}-{zlib.crc32(self.name.encode()) % 0xFFFF:04x}",
            }
        )
        grpc: dict[str, Any] = {
            "endpoint": self.endpoint,
            "insecure": True,
            "headers": self.headers,
        }
        tracing = TracerProvider(resource=resource)
        tracing.add_span_processor(
            BatchSpanProcessor(
                _CountingSpanExporter(OTLPSpanExporter(**grpc), self.report),
                schedule_delay_millis=500,
            )
        )
        logging = LoggerProvider(resource=resource)
        logging.add_log_record_processor(
            BatchLogRecordProcessor(
                _CountingLogExporter(OTLPLogExporter(**grpc), self.report),
                schedule_delay_millis=500,
            )
        )
        reader = PeriodicExportingMetricReader(
            OTLPMetricExporter(**grpc), export_interval_millis=1000
        )
        metering = MeterProvider(resource=resource, metric_readers=[reader])
        self.providers = [tracing, logging, metering]
        scope = f"shop.{self.name}"
        self.tracer = tracing.get_tracer(scope, self.version)
        self.logger = logging.get_logger(scope, self.version)
        meter = metering.get_meter(scope, self.version)
        self.requests = meter.create_counter(
            "http.server.request.count", unit="{request}", description="Requests served"
        )
        self.duration = meter.create_histogram(
            "http.server.request.duration", unit="s", description="Time to serve a request"
        )
        self.stock = meter.create_gauge(
            "inventory.stock.level", unit="{item}", description="Items in stock per SKU"
        )

    def log(
        self,
        when_ns: int,
        context: Context,
        severity: SeverityNumber,
        body: str,
        exception: BaseException | None = None,
        **attrs: Any,
    ) -> None:
        self.logger.emit(
            timestamp=when_ns,
            context=context,
            severity_number=severity,
            severity_text=severity.name.rstrip("0123456789"),
            body=body,
            attributes=attrs or None,
            exception=exception,
        )

    def shutdown(self) -> None:
        for provider in self.providers:
            provider.shutdown()
