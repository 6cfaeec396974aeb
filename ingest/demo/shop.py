"""The demo's shop: four services and the requests that flow through them.

Frontend -> checkout -> inventory and payments. Requests cross services through W3C
trace-context headers, payments declines some cards (the exception is recorded on the span and
logged), logs carry the trace and span ids of the work they describe, and every server records a
request counter, a duration histogram and, in inventory, a stock gauge. Span times follow a
simulated clock so traces look like real latencies without waiting. While ``incident`` is set the
payment provider times out for most charges.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from ingest.demo.telemetry import DemoReport, ServiceTelemetry

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


class Shop:
    """Simulates requests through the four services; each request is one trace."""

    def __init__(self, endpoint: str, headers: dict[str, str], seed: int | None = None):
        self.report = DemoReport()
        self.rng = random.Random(seed)
        self.services = {
            name: ServiceTelemetry(name, version, endpoint, headers, self.report)
            for name, version in SERVICES.items()
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
            timeout = ProviderTimeout("payment provider did not answer within 800 ms")
            self._log("payments", span, SeverityNumber.ERROR, "charge failed", exception=timeout)
            raise timeout
        if self.rng.random() < PAYMENT_FAILURE_RATE:
            self.report.failed_payments += 1
            declined = PaymentDeclined(f"card declined by issuer (amount {amount:.2f} EUR)")
            self._log(
                "payments",
                span,
                SeverityNumber.ERROR,
                "payment failed",
                exception=declined,
                amount=amount,
            )
            raise declined
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
