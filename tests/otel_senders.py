"""Send telemetry with unique ids through the real OpenTelemetry SDK exporters.

Each sender uses its own providers (never the global ones), flushes and shuts down, so when it
returns every record has been acknowledged by the receiver or the exporter has reported failure.
"""

from __future__ import annotations

import importlib
import json
import time
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.resources import Resource

Transport = str  # "grpc", "grpc-gzip", "http-protobuf", "http-json"


@dataclass(frozen=True)
class Endpoints:
    grpc_port: int
    http_port: int

    def grpc(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def http(self, path: str) -> str:
        return f"http://127.0.0.1:{self.http_port}{path}"


#: signal -> (gRPC exporter, HTTP exporter, HTTP path), as "module:class".
_EXPORTERS = {
    "traces": (
        "opentelemetry.exporter.otlp.proto.grpc.trace_exporter:OTLPSpanExporter",
        "opentelemetry.exporter.otlp.proto.http.trace_exporter:OTLPSpanExporter",
        "/v1/traces",
    ),
    "logs": (
        "opentelemetry.exporter.otlp.proto.grpc._log_exporter:OTLPLogExporter",
        "opentelemetry.exporter.otlp.proto.http._log_exporter:OTLPLogExporter",
        "/v1/logs",
    ),
    "metrics": (
        "opentelemetry.exporter.otlp.proto.grpc.metric_exporter:OTLPMetricExporter",
        "opentelemetry.exporter.otlp.proto.http.metric_exporter:OTLPMetricExporter",
        "/v1/metrics",
    ),
}


def _load(target: str) -> Any:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def exporter(ep: Endpoints, transport: Transport, signal: str) -> Any:
    """The SDK's own OTLP exporter for ``signal`` over ``transport``."""
    grpc_cls, http_cls, path = _EXPORTERS[signal]
    if transport.startswith("grpc"):
        from opentelemetry.exporter.otlp.proto.grpc.exporter import Compression

        gzip = Compression.Gzip if transport == "grpc-gzip" else Compression.NoCompression
        return _load(grpc_cls)(endpoint=ep.grpc(), insecure=True, compression=gzip, timeout=30)
    return _load(http_cls)(endpoint=ep.http(path), timeout=30)


def _resource(service: str, run_id: str) -> Resource:
    return Resource.create(
        {"service.name": service, "deployment.environment": "test", "test.run": run_id}
    )


def send_spans(
    ep: Endpoints, transport: Transport, run_id: str, count: int, service: str = "checkout"
) -> list[str]:
    """Send ``count`` spans, each with a unique ``test.uid`` attribute; return the uids."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=_resource(service, run_id))
    provider.add_span_processor(
        BatchSpanProcessor(exporter(ep, transport, "traces"), max_export_batch_size=256)
    )
    tracer = provider.get_tracer("emberlake.tests")
    uids = []
    for i in range(count):
        uid = f"{run_id}-{transport}-span-{i}"
        with tracer.start_as_current_span(
            "GET /cart",
            attributes={"test.uid": uid, "http.status_code": 200 + i % 3, "ratio": i / 7.0},
        ):
            with tracer.start_as_current_span("db.query", attributes={"test.uid": uid + "-child"}):
                pass
        uids.append(uid)
    assert provider.force_flush(30_000), "span exporter did not flush"
    provider.shutdown()
    return uids


def send_logs(
    ep: Endpoints, transport: Transport, run_id: str, count: int, service: str = "checkout"
) -> list[str]:
    """Send ``count`` log records with unique ``test.uid`` attributes; return the uids."""
    from opentelemetry._logs import LogRecord, SeverityNumber
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    provider = LoggerProvider(resource=_resource(service, run_id))
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter(ep, transport, "logs")))
    logger = provider.get_logger("emberlake.tests")
    uids = []
    for i in range(count):
        uid = f"{run_id}-{transport}-log-{i}"
        logger.emit(
            LogRecord(
                timestamp=time.time_ns(),
                severity_number=SeverityNumber.ERROR if i % 5 == 0 else SeverityNumber.INFO,
                severity_text="ERROR" if i % 5 == 0 else "INFO",
                body=f"order {i} processed",
                attributes={"test.uid": uid, "order.id": i},
            )
        )
        uids.append(uid)
    assert provider.force_flush(30_000), "log exporter did not flush"
    provider.shutdown()
    return uids


def send_metrics(
    ep: Endpoints, transport: Transport, run_id: str, service: str = "checkout"
) -> str:
    """Export one counter, histogram and gauge observation tagged with a unique uid."""
    from opentelemetry.metrics import CallbackOptions, Observation
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    reader = PeriodicExportingMetricReader(
        exporter(ep, transport, "metrics"), export_interval_millis=3_600_000
    )
    provider = MeterProvider(resource=_resource(service, run_id), metric_readers=[reader])
    meter = provider.get_meter("emberlake.tests")
    uid = f"{run_id}-{transport}-metric"
    meter.create_counter("orders").add(3, {"test.uid": uid})
    meter.create_histogram("latency_ms").record(12.5, {"test.uid": uid})

    def observe(_options: CallbackOptions) -> list[Observation]:
        return [Observation(42.0, {"test.uid": uid})]

    meter.create_observable_gauge("queue_depth", callbacks=[observe])
    # Shutdown collects and exports once; a force_flush before it would export the same
    # cumulative points a second time.
    provider.shutdown()
    return uid


def send_json_spans(ep: Endpoints, run_id: str, count: int, service: str = "checkout") -> list[str]:
    """POST OTLP/JSON spans by hand (the Python SDK has no JSON exporter)."""
    now = time.time_ns()
    uids = [f"{run_id}-http-json-span-{i}" for i in range(count)]
    spans = [
        {
            "traceId": uuid.uuid4().hex,
            "spanId": uuid.uuid4().hex[:16],
            "name": "POST /pay",
            "kind": 2,
            "startTimeUnixNano": str(now),
            "endTimeUnixNano": str(now + 5_000_000),
            "attributes": [
                {"key": "test.uid", "value": {"stringValue": uid}},
                {"key": "retries", "value": {"intValue": "2"}},
            ],
            "status": {"code": 2, "message": "card declined"},
        }
        for uid in uids
    ]
    body = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [
                        {"key": "service.name", "value": {"stringValue": service}},
                        {"key": "test.run", "value": {"stringValue": run_id}},
                    ]
                },
                "scopeSpans": [{"scope": {"name": "json-client"}, "spans": spans}],
            }
        ]
    }
    req = urllib.request.Request(
        ep.http("/v1/traces"), json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200, resp.status
        reply = json.loads(resp.read() or b"{}")
        assert not reply.get("partialSuccess", {}).get("rejectedSpans"), reply
    return uids
