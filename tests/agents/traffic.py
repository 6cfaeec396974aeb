"""Steady telemetry, with incidents on demand, produced as OTLP requests to the signal topics.

The generator keeps its own clock of 0.1 s ticks that follows real time; when it falls behind
(a loaded machine) it catches up, so every window holds exactly the planned number of requests
and a test can compare detector state with what was produced, window by window.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from emberlake.settings import Settings
from ingest.kafka import KafkaSink
from ingest.topics import HEADER_RECEIVED_US, HEADER_SIGNAL, HEADER_TENANT, Topics, record_key

TICK = 0.1


def _kv(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


@dataclass
class Traffic:
    """Per-service steady traffic; ``incident`` services get errors, latency and error logs."""

    settings: Settings
    services: tuple[str, ...] = ("checkout", "payments")
    requests_per_tick: int = 6
    tenant: str = "default"
    incident: set[str] = field(default_factory=set)
    #: (service, window start us) -> request spans produced with end time in that window.
    produced: Counter[tuple[str, int]] = field(default_factory=Counter)
    seed: int = 1

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sink = KafkaSink(self.settings)
        self._topics = Topics(self.settings.kafka.topic_prefix)
        self._window_us = int(self.settings.agents.detector_window_seconds * 1_000_000)
        self.lock = threading.Lock()

    def _requests(self, service: str, t_ns: int) -> tuple[bytes, bytes, int]:
        bad = service in self.incident
        spans = ExportTraceServiceRequest()
        rs = spans.resource_spans.add()
        rs.resource.attributes.append(_kv("service.name", service))
        ss = rs.scope_spans.add()
        logs = ExportLogsServiceRequest()
        rl = logs.resource_logs.add()
        rl.resource.attributes.append(_kv("service.name", service))
        sl = rl.scope_logs.add()
        n = self.requests_per_tick
        for i in range(n):
            end = t_ns + i * int(TICK * 1e9) // n
            latency_ms = (300.0 if bad else 30.0) * self._rng.lognormvariate(0, 0.15)
            error = self._rng.random() < (0.4 if bad else 0.01)
            trace_id = self._rng.getrandbits(128).to_bytes(16, "big")
            span = ss.spans.add(
                trace_id=trace_id,
                span_id=self._rng.getrandbits(64).to_bytes(8, "big"),
                name="POST /order",
                kind=Span.SPAN_KIND_SERVER,
                start_time_unix_nano=end - int(latency_ms * 1e6),
                end_time_unix_nano=end,
            )
            exc = (
                ("TimeoutError", f"query on table orders took {self._rng.randint(3000, 9000)} ms")
                if bad
                else ("ConnectionResetError", f"peer 10.0.0.{self._rng.randint(1, 254)} reset")
            )
            if error:
                span.status.code = Status.STATUS_CODE_ERROR
                ev = span.events.add(name="exception", time_unix_nano=end)
                ev.attributes.extend(
                    [_kv("exception.type", exc[0]), _kv("exception.message", exc[1])]
                )
            rec = sl.log_records.add(
                time_unix_nano=end,
                severity_number=17 if error else 9,
                severity_text="ERROR" if error else "INFO",
                body=AnyValue(string_value=f"{exc[0]}: {exc[1]}" if error else "order placed"),
                trace_id=trace_id,
            )
            if error:
                rec.attributes.extend(
                    [_kv("exception.type", exc[0]), _kv("exception.message", exc[1])]
                )
            window = (end // 1000) - (end // 1000) % self._window_us
            self.produced[(service, window)] += 1
        return spans.SerializeToString(), logs.SerializeToString(), n

    def _send_tick(self, t_ns: int) -> None:
        for service in self.services:
            with self.lock:
                spans, logs, _ = self._requests(service, t_ns)
            key = record_key(self.tenant, service)
            received = str(time.time_ns() // 1000).encode()
            for signal, value in (("spans", spans), ("logs", logs)):
                headers = [
                    (HEADER_TENANT, self.tenant.encode()),
                    (HEADER_SIGNAL, signal.encode()),
                    (HEADER_RECEIVED_US, received),
                ]
                self._sink.send(self._topics.signal(signal), key, value, headers)  # type: ignore[arg-type]

    def _run(self) -> None:
        t_ns = time.time_ns()
        while not self._stop.is_set():
            self._send_tick(t_ns)
            t_ns += int(TICK * 1e9)
            ahead = t_ns / 1e9 - time.time()
            if ahead > 0:
                self._stop.wait(ahead)
        self._sink.flush(10)

    def start(self) -> Traffic:
        self._thread = threading.Thread(target=self._run, name="traffic", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(15)
        self._sink.close()


class SdkTraffic:
    """The same steady traffic, sent through the real OpenTelemetry SDK over OTLP/gRPC.

    Spans carry explicit start and end times (so latency needs no sleeping); errors record an
    exception event as instrumented code does; every request also emits a log record.
    """

    def __init__(
        self,
        grpc_endpoint: str,
        services: tuple[str, ...] = ("checkout", "payments"),
        requests_per_tick: int = 6,
        seed: int = 2,
    ):
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        self.services = services
        self.requests_per_tick = requests_per_tick
        self.incident: set[str] = set()
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._providers: list[Any] = []
        self._tracers: dict[str, Any] = {}
        self._loggers: dict[str, Any] = {}
        for service in services:
            resource = Resource.create({"service.name": service})
            tp = TracerProvider(resource=resource)
            tp.add_span_processor(
                BatchSpanProcessor(
                    OTLPSpanExporter(endpoint=grpc_endpoint, insecure=True, timeout=10),
                    schedule_delay_millis=100,
                )
            )
            lp = LoggerProvider(resource=resource)
            lp.add_log_record_processor(
                BatchLogRecordProcessor(
                    OTLPLogExporter(endpoint=grpc_endpoint, insecure=True, timeout=10),
                    schedule_delay_millis=100,
                )
            )
            self._providers += [tp, lp]
            self._tracers[service] = tp.get_tracer("emberlake.tests")
            self._loggers[service] = lp.get_logger("emberlake.tests")

    def _tick(self, t_ns: int) -> None:
        from opentelemetry._logs import LogRecord, SeverityNumber
        from opentelemetry.trace import SpanKind, Status, StatusCode

        for service in self.services:
            bad = service in self.incident
            for i in range(self.requests_per_tick):
                end = t_ns + i * int(TICK * 1e9) // self.requests_per_tick
                latency_ms = (300.0 if bad else 30.0) * self._rng.lognormvariate(0, 0.15)
                error = self._rng.random() < (0.4 if bad else 0.01)
                span = self._tracers[service].start_span(
                    "POST /order", kind=SpanKind.SERVER, start_time=end - int(latency_ms * 1e6)
                )
                exc: Exception = (
                    TimeoutError(f"query on table orders took {self._rng.randint(3000, 9000)} ms")
                    if bad
                    else ConnectionResetError(f"peer 10.0.0.{self._rng.randint(1, 254)} reset")
                )
                if error:
                    span.record_exception(exc, timestamp=end)
                    span.set_status(Status(StatusCode.ERROR, str(exc)))
                ctx = span.get_span_context()
                span.end(end_time=end)
                attributes = (
                    {"exception.type": type(exc).__name__, "exception.message": str(exc)}
                    if error
                    else {}
                )
                self._loggers[service].emit(
                    LogRecord(
                        timestamp=end,
                        trace_id=ctx.trace_id,
                        span_id=ctx.span_id,
                        severity_number=SeverityNumber.ERROR if error else SeverityNumber.INFO,
                        severity_text="ERROR" if error else "INFO",
                        body=str(exc) if error else "order placed",
                        attributes=attributes,
                    )
                )

    def _run(self) -> None:
        t_ns = time.time_ns()
        while not self._stop.is_set():
            self._tick(t_ns)
            t_ns += int(TICK * 1e9)
            ahead = t_ns / 1e9 - time.time()
            if ahead > 0:
                self._stop.wait(ahead)

    def start(self) -> SdkTraffic:
        self._thread = threading.Thread(target=self._run, name="sdk-traffic", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(15)
            self._thread = None
        for provider in self._providers:
            provider.shutdown()
        self._providers = []
