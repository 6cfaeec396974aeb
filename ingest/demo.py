"""``emberlake demo``: a small shop's telemetry, sent through the real OpenTelemetry SDK.

Four services (frontend -> checkout -> inventory and payments) each get their own tracer, logger
and meter providers with OTLP/gRPC exporters, as four separate processes would. Requests cross
services through W3C trace-context headers, payments declines some cards (the exception is
recorded on the span and logged), logs carry the trace and span ids of the work they describe,
and every server records a request counter, a duration histogram and, in inventory, a stock
gauge. Span times follow a simulated clock so traces look like real latencies without waiting.
"""

from __future__ import annotations

import random
import time
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import grpc
from opentelemetry import trace
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
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from emberlake.errors import ReceiverUnavailable

#: service -> version
SERVICES = {"frontend": "2.3.1", "checkout": "1.8.0", "payments": "3.0.2", "inventory": "1.2.5"}
SKUS = ("sku-1001", "sku-1002", "sku-2040", "sku-3300", "sku-4711")
PAYMENT_FAILURE_RATE = 0.15
INCIDENT_FAILURE_RATE = 0.7
_PROPAGATOR = TraceContextTextMapPropagator()


class PaymentDeclined(Exception):
    """The card issuer said no."""


class ProviderTimeout(Exception):
    """The payment provider did not answer in time (the demo's incident)."""


class UpstreamError(Exception):
    """A service this one called answered with an error."""


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


@dataclass
class ServiceTelemetry:
    """One service's providers and instruments, as its own process would hold them."""

    name: str
    endpoint: str
    headers: dict[str, str]
    report: DemoReport
    providers: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        resource = Resource.create(
            {
                "service.name": self.name,
                "service.version": SERVICES[self.name],
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
        self.tracer = tracing.get_tracer(scope, SERVICES[self.name])
        self.logger = logging.get_logger(scope, SERVICES[self.name])
        meter = metering.get_meter(scope, SERVICES[self.name])
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


class Shop:
    """Simulates requests through the four services; each request is one trace."""

    def __init__(self, endpoint: str, headers: dict[str, str], seed: int | None = None):
        self.report = DemoReport()
        self.rng = random.Random(seed)
        self.services = {
            name: ServiceTelemetry(name, endpoint, headers, self.report) for name in SERVICES
        }
        self._now = 0
        self._stock = dict.fromkeys(SKUS, 500)
        #: While set, the payment provider behind ``payments`` times out for most charges.
        self.incident = False

    def _log(
        self, service: str, span: trace.Span, severity: SeverityNumber, body: str, **attrs: Any
    ) -> None:
        context = trace.set_span_in_context(span)
        self.services[service].log(self._now, context, severity, body, **attrs)

    def _advance(self, low_ms: float, high_ms: float) -> None:
        self._now += int(self.rng.uniform(low_ms, high_ms) * 1_000_000)

    @contextmanager
    def _span(
        self, service: str, name: str, kind: SpanKind, context: Context | None, **attrs: Any
    ) -> Iterator[trace.Span]:
        """A span from the simulated clock; without an explicit parent context, its parent is
        the span this one is nested in (the current span), as in instrumented code."""
        tracer = self.services[service].tracer
        span = tracer.start_span(name, context, kind, attrs, start_time=self._now)
        self._advance(0.2, 3.0)
        current = trace.use_span(
            span, end_on_exit=False, record_exception=False, set_status_on_exception=False
        )
        try:
            with current:
                yield span
        except Exception as exc:
            span.record_exception(exc, timestamp=self._now)
            span.set_status(Status(StatusCode.ERROR, str(exc)))
            span.set_attribute("error.type", type(exc).__name__)
            raise
        finally:
            self._advance(0.1, 1.0)
            span.end(end_time=self._now)

    @contextmanager
    def _server(
        self, service: str, method: str, route: str, path: str, carrier: dict[str, str] | None
    ) -> Iterator[trace.Span]:
        """A SERVER span plus the request metrics; an exception inside means a 5xx answer."""
        parent = _PROPAGATOR.extract(carrier) if carrier is not None else None
        started = self._now
        status = 200
        attrs = {"http.route": route, "http.request.method": method}
        with self._span(
            service,
            f"{method} {route}",
            SpanKind.SERVER,
            parent,
            **attrs,
            **{"url.path": path, "url.scheme": "http", "server.address": service},
            **{"network.protocol.version": "1.1", "server.port": 8080},
        ) as span:
            try:
                yield span
            except Exception:
                status = 502 if service == "payments" else 500
                raise
            finally:
                span.set_attribute("http.response.status_code", status)
                telemetry = self.services[service]
                done: dict[str, Any] = {**attrs, "http.response.status_code": status}
                telemetry.requests.add(1, done)
                telemetry.duration.record((self._now - started) / 1e9, done)

    def _call(self, caller: str, callee: str, method: str, route: str, path: str) -> Any:
        """A CLIENT span in the caller around the callee's SERVER span; errors propagate."""
        url = f"http://{callee}:8080{path}"
        with self._span(
            caller,
            method,
            SpanKind.CLIENT,
            None,
            **{"http.request.method": method, "url.full": url, "server.address": callee},
        ) as client:
            carrier: dict[str, str] = {}
            _PROPAGATOR.inject(carrier, trace.set_span_in_context(client))
            try:
                with self._server(callee, method, route, path, carrier) as server:
                    handler = getattr(self, f"_serve_{callee}")
                    result = handler(server)
            except Exception as exc:
                client.set_attribute("http.response.status_code", 502)
                raise UpstreamError(f"{callee} answered {method} {path} with an error") from exc
            client.set_attribute("http.response.status_code", 200)
            return result

    def _serve_inventory(self, span: trace.Span) -> None:
        sku = self.rng.choice(SKUS)
        with self._span(
            "inventory",
            "SELECT shop.stock",
            SpanKind.CLIENT,
            trace.set_span_in_context(span),
            **{"db.system.name": "postgresql", "db.collection.name": "stock"},
            **{"db.query.text": "SELECT quantity FROM stock WHERE sku = $1 FOR UPDATE"},
        ):
            self._advance(1.0, 12.0)
        self._stock[sku] = max(0, self._stock[sku] - self.rng.randint(0, 3))
        self.services["inventory"].stock.set(self._stock[sku], {"sku": sku})
        self._log("inventory", span, SeverityNumber.INFO, f"reserved stock for {sku}", sku=sku)

    def _serve_payments(self, span: trace.Span) -> None:
        amount = round(self.rng.uniform(5, 400), 2)
        span.set_attribute("payment.amount", amount)
        self._advance(20.0, 180.0)
        if self.incident and self.rng.random() < INCIDENT_FAILURE_RATE:
            self._advance(600.0, 1200.0)
            self.report.failed_payments += 1
            exc = ProviderTimeout("payment provider did not answer within 800 ms")
            self._log("payments", span, SeverityNumber.ERROR, "charge failed", exception=exc)
            raise exc
        if self.rng.random() < PAYMENT_FAILURE_RATE:
            self.report.failed_payments += 1
            exc = PaymentDeclined(f"card declined by issuer (amount {amount:.2f} EUR)")
            self._log(
                "payments",
                span,
                SeverityNumber.ERROR,
                "payment failed",
                exception=exc,
                amount=amount,
            )
            raise exc
        self._log("payments", span, SeverityNumber.INFO, "payment captured", amount=amount)

    def _serve_checkout(self, span: trace.Span) -> None:
        order = f"ord-{self.rng.randrange(10**6):06d}"
        span.set_attribute("order.id", order)
        self._call("checkout", "inventory", "POST", "/api/stock/reserve", "/api/stock/reserve")
        try:
            self._call("checkout", "payments", "POST", "/api/charge", "/api/charge")
        except UpstreamError:
            self._log("checkout", span, SeverityNumber.WARN, f"order {order} failed: no payment")
            raise
        self._log("checkout", span, SeverityNumber.INFO, f"order {order} placed", order_id=order)

    def request(self) -> None:
        """One user request at the frontend: a product page or a checkout."""
        self._now = time.time_ns()
        checkout = self.rng.random() < 0.4
        route, method = ("/checkout", "POST") if checkout else ("/product/{id}", "GET")
        path = "/checkout" if checkout else f"/product/{self.rng.randint(1, 500)}"
        self.report.traces += 1
        # The frontend answers 500 when a call fails; the trace records that, the demo goes on.
        with suppress(UpstreamError), self._server("frontend", method, route, path, None) as span:
            span.set_attribute("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64)")
            span.set_attribute("client.address", f"203.0.113.{self.rng.randint(1, 254)}")
            try:
                if checkout:
                    self._call("frontend", "checkout", "POST", "/api/checkout", "/api/checkout")
                else:
                    self._call("frontend", "inventory", "GET", "/api/stock/{sku}", "/api/stock")
            except UpstreamError:
                self._log("frontend", span, SeverityNumber.ERROR, f"{method} {path} 500")
                raise
            self._log("frontend", span, SeverityNumber.INFO, f"{method} {path} 200")

    def shutdown(self) -> DemoReport:
        """Flush and shut every provider down, so everything is sent before returning."""
        for telemetry in self.services.values():
            telemetry.shutdown()
        return self.report


def wait_for_receiver(endpoint: str, timeout: float = 5.0) -> None:
    """Fail fast, with a useful message, when nothing answers OTLP/gRPC at ``endpoint``."""
    target = endpoint.split("://", 1)[-1]
    with grpc.insecure_channel(target) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            raise ReceiverUnavailable(
                f"no OTLP/gRPC receiver answers at {target} after {timeout:.0f}s: start one with"
                " `emberlake up` (or `emberlake receiver`), or pass --endpoint"
            ) from None


def run_demo(
    endpoint: str,
    *,
    tenant: str | None = None,
    token: str | None = None,
    traces: int | None = None,
    seconds: float = 10.0,
    rate: float = 20.0,
    seed: int | None = None,
    incident_after: float | None = None,
) -> DemoReport:
    """Send shop telemetry to an OTLP/gRPC endpoint for ``seconds`` or until ``traces`` sent.

    With ``incident_after``, the payment provider starts timing out that many seconds in, so
    payments fails slowly and checkout and frontend fail with it: what the detectors and the
    investigator agents are for."""
    wait_for_receiver(endpoint)
    headers: dict[str, str] = {}
    if tenant:
        headers["x-emberlake-tenant"] = tenant
    if token:
        headers["authorization"] = f"Bearer {token}"
    shop = Shop(endpoint, headers, seed)
    started = time.monotonic()
    interval = 1.0 / rate if rate > 0 else 0.0
    sent = 0
    while (traces is None or sent < traces) and time.monotonic() - started < seconds:
        shop.incident = incident_after is not None and time.monotonic() - started >= incident_after
        shop.request()
        sent += 1
        pause = started + sent * interval - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    report = shop.shutdown()
    report.seconds = time.monotonic() - started
    return report
