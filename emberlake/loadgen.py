"""A load generator that knows which spans the receiver acknowledged.

Used by the fault tests and the soak benchmark. Spans go through the OpenTelemetry SDK's own
OTLP/gRPC exporter, one export request at a time, so the outcome of every request is known and
lands in a :class:`~emberlake.sendlog.SendLog`. Each span carries a unique ``test.uid`` attribute
and each resource a ``test.run`` attribute, so what the lake stored can be counted against what
was acknowledged.
"""

from __future__ import annotations

import threading
import time

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Tracer

from emberlake.sendlog import SendLog, SentBatch

#: Span attribute holding a record's unique id, ``<run>-<sequence number>``.
UID_ATTRIBUTE = "test.uid"
#: Resource attribute naming the run a record belongs to.
RUN_ATTRIBUTE = "test.run"


class AckedSpanSender:
    """Sends spans through the OpenTelemetry SDK's OTLP/gRPC exporter, one request of ``batch``
    spans at a time, and logs which requests were acknowledged in ``log``.

    The exporter retries UNAVAILABLE (with the receiver's retry hint) and connection failures
    within ``timeout`` seconds, as an instrumented application's exporter would; a request still
    failing then counts as not acknowledged (a real SDK would drop it).

    Pacing: by default the sender pauses ``interval`` seconds after each request, so a slow
    receiver slows it down. With ``steady=True`` requests start every ``interval`` seconds on a
    fixed schedule and a stalled request is caught up afterwards, so the offered load stays at
    ``batch / interval`` spans/s over the run (what a soak measures).
    """

    def __init__(
        self,
        endpoint: str,
        run: str,
        batch: int = 20,
        interval: float = 0.05,
        *,
        steady: bool = False,
        services: int = 4,
        service_prefix: str = "svc",
        span_name: str = "GET /item",
        timeout: float = 20.0,
        headers: dict[str, str] | None = None,
    ):
        self.run = run
        self.batch = batch
        self.interval = interval
        self.steady = steady
        self.span_name = span_name
        self.log = SendLog()
        self.error: BaseException | None = None
        self._exporter = OTLPSpanExporter(
            endpoint=endpoint, insecure=True, timeout=timeout, headers=headers
        )
        # Spans are finished into memory and exported by hand, one request per batch, so each
        # request's result is ours to see (a BatchSpanProcessor would hide it).
        self._collector = InMemorySpanExporter()
        self._tracers: list[Tracer] = []
        for i in range(services):
            provider = TracerProvider(
                resource=Resource.create(
                    {"service.name": f"{service_prefix}{i}", RUN_ATTRIBUTE: run}
                )
            )
            provider.add_span_processor(SimpleSpanProcessor(self._collector))
            self._tracers.append(provider.get_tracer("emberlake.loadgen"))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"sender-{run}", daemon=True)
        self._seq = 0
        self._stopped = False

    def _one(self, n: int) -> None:
        tracer = self._tracers[n % len(self._tracers)]
        uids = []
        for _ in range(self.batch):
            uid = f"{self.run}-{self._seq}"
            self._seq += 1
            with tracer.start_as_current_span(self.span_name, attributes={UID_ATTRIBUTE: uid}):
                pass
            uids.append(uid)
        spans = self._collector.get_finished_spans()
        self._collector.clear()
        sent = SentBatch(uids, time.monotonic())
        self.log.add(sent)
        result = self._exporter.export(spans)
        sent.ended = time.monotonic()
        sent.acked = result == SpanExportResult.SUCCESS

    def _loop(self) -> None:
        n = 0
        next_at = time.monotonic()
        try:
            while not self._stop.is_set():
                self._one(n)
                n += 1
                if self.steady:
                    next_at += self.interval
                    self._stop.wait(max(0.0, next_at - time.monotonic()))
                else:
                    self._stop.wait(self.interval)
        except BaseException as exc:  # surfaced by stop()
            self.error = exc

    def start(self) -> AckedSpanSender:
        """Send on a background thread until :meth:`stop`."""
        self._thread.start()
        return self

    def send_now(self, batches: int) -> None:
        """Send ``batches`` requests on the caller's thread (when not started)."""
        for n in range(batches):
            self._one(n)

    def stop(self, timeout: float = 60.0) -> None:
        """Let the request in flight finish, then shut the exporter down.

        Raises what the sending thread failed with, or TimeoutError if its last request is
        still running after ``timeout`` seconds. Calling it again does nothing, so a caller can
        stop the sender early and again in a ``finally``.
        """
        if self._stopped:
            return
        self._stopped = True
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise TimeoutError(f"the sender's last request did not finish in {timeout:.0f}s")
        self._exporter.shutdown()
        if self.error is not None:
            raise self.error
