"""The receiver process: OTLP/gRPC and OTLP/HTTP in one asyncio loop, producing to Kafka.

:class:`Receiver` is the async core, :func:`serve` runs it until told to stop (the CLI wires
SIGINT/SIGTERM to that), and :class:`ReceiverThread` runs it on a background thread for tests and
tools that are not async themselves. Stopping is graceful: stop accepting, let requests in flight
finish (each answers only once Kafka acknowledged it), then flush the producer. With the ack
journal on (see :mod:`ingest.journal`), a request is answered only once its records are also in
the journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import Any

from emberlake.errors import EmberlakeError
from emberlake.settings import Settings
from ingest.journal import (
    JournalSink,
    JournalStore,
    JournalTrimmer,
    JournalWriter,
    journal_dir,
    journal_enabled,
    journal_health,
    lake_checkpoints,
)
from ingest.kafka import KafkaSink, cluster_id
from ingest.otlp_receiver.grpc_server import OtlpGrpcServer
from ingest.otlp_receiver.handler import ExportHandler, Sink
from ingest.otlp_receiver.http_server import OtlpHttpServer

log = logging.getLogger(__name__)


class Receiver:
    """Both OTLP servers over one export handler and one Kafka producer."""

    def __init__(self, settings: Settings, sink: Sink | None = None, grace: float = 8.0):
        """``grace``: seconds requests in flight get to finish when stopping. The producer then
        gets up to 5 s more to deliver what cancelled requests left behind (their clients were
        not answered OK, so they retry): within the 15 s the supervisor waits."""
        self.settings = settings
        self.grace = grace
        self._sink = sink
        self._owns_sink = sink is None
        self.handler: ExportHandler | None = None
        self._grpc: OtlpGrpcServer | None = None
        self._http: OtlpHttpServer | None = None
        self._journal: JournalWriter | None = None
        self._trimmer: JournalTrimmer | None = None

    @property
    def grpc_port(self) -> int:
        assert self._grpc is not None, "receiver not started"
        return self._grpc.port

    @property
    def http_port(self) -> int:
        assert self._http is not None, "receiver not started"
        return self._http.port

    async def start(self) -> None:
        """Create the producer and start listening on both ports."""
        r = self.settings.receiver
        if self._sink is None:
            self._sink = KafkaSink(self.settings)
            if journal_enabled(self.settings):
                self._sink = await self._journalled(self._sink)
        self.handler = ExportHandler(self.settings, self._sink)
        self._grpc = OtlpGrpcServer(self.handler, r.host, r.grpc_port, r.max_request_bytes)
        self._http = OtlpHttpServer(
            self.handler,
            r.host,
            r.http_port,
            r.max_request_bytes,
            shutdown_grace=self.grace,
            health=self._health if self._journal is not None else None,
        )
        try:
            await self._grpc.start()
            await self._http.start()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop accepting, drain requests in flight, flush and close the producer."""
        stopping = []
        if self._grpc is not None:
            stopping.append(self._grpc.stop(self.grace))
        if self._http is not None:
            stopping.append(self._http.stop())
        await asyncio.gather(*stopping, return_exceptions=True)
        self._grpc = self._http = None
        if self._trimmer is not None:
            await asyncio.to_thread(self._trimmer.stop)
            self._trimmer = None
        kafka = self._sink.kafka if isinstance(self._sink, JournalSink) else self._sink
        if self._owns_sink and isinstance(kafka, KafkaSink):
            self._sink = None
            await asyncio.to_thread(kafka.close, min(self.grace, 5.0))
        if self._journal is not None:
            # After the producer closed: requests still journalling have finished by now.
            self._journal.close()
            self._journal = None
        log.info("receiver stopped")

    def _health(self) -> dict[str, Any]:
        if self._journal is None:
            return {}
        return {"journal": journal_health(self._journal, self._trimmer)}

    async def _journalled(self, kafka: KafkaSink) -> JournalSink:
        """Wrap the producer in the ack journal and start trimming it."""
        r = self.settings.receiver
        self._journal = JournalWriter(
            JournalStore(journal_dir(self.settings)),
            fsync=r.journal_fsync,
            segment_bytes=r.journal_segment_bytes,
            segment_seconds=r.journal_segment_seconds,
        )

        def read_cluster() -> str:
            return cluster_id(self.settings, timeout=5.0)

        sink = JournalSink(kafka, self._journal, read_cluster)
        try:
            await asyncio.to_thread(sink.refresh_cluster)
        except EmberlakeError as exc:
            # Learnt on the first acknowledgement instead; until then nothing is acknowledged.
            log.warning("cannot read the broker's cluster id yet (%s)", exc)
        trimmer = JournalTrimmer(
            self._journal,
            lake_checkpoints(self.settings),
            r.journal_trim_seconds,
            read_cluster,
            sink.new_cluster,
        )
        self._trimmer = await asyncio.to_thread(trimmer.start)
        log.info(
            "ack journal on in %s%s",
            self._journal.store.directory,
            " (fsync)" if r.journal_fsync else "",
        )
        return sink

    async def __aenter__(self) -> Receiver:
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()


async def serve(
    settings: Settings, ready: asyncio.Event | None = None, stop: asyncio.Event | None = None
) -> None:
    """Run a receiver until ``stop`` is set (forever if not given); set ``ready`` once serving."""
    stop = stop or asyncio.Event()
    async with Receiver(settings) as receiver:
        log.info(
            "receiver ready: OTLP/gRPC %s:%d, OTLP/HTTP %s:%d",
            settings.receiver.host,
            receiver.grpc_port,
            settings.receiver.host,
            receiver.http_port,
        )
        if ready is not None:
            ready.set()
        await stop.wait()


class ReceiverThread:
    """A :class:`Receiver` on its own event loop in a background thread.

    ``start()`` returns once both ports listen (or raises what start-up raised); ``stop()``
    drains and flushes like the CLI does on SIGTERM.
    """

    def __init__(self, settings: Settings, sink: Sink | None = None, grace: float = 5.0):
        self.receiver = Receiver(settings, sink, grace)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="otlp-receiver", daemon=True)

    @property
    def grpc_port(self) -> int:
        return self.receiver.grpc_port

    @property
    def http_port(self) -> int:
        return self.receiver.http_port

    @property
    def grpc_endpoint(self) -> str:
        return f"{self.receiver.settings.receiver.host}:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://{self.receiver.settings.receiver.host}:{self.http_port}"

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            await self.receiver.start()
        except BaseException as exc:
            self._error = exc
            self._started.set()
            return
        self._started.set()
        try:
            await self._stop.wait()
        finally:
            await self.receiver.stop()

    def start(self, timeout: float = 30.0) -> ReceiverThread:
        self._thread.start()
        if not self._started.wait(timeout):
            raise TimeoutError(f"receiver did not start within {timeout}s")
        if self._error is not None:
            self._thread.join()
            raise self._error
        return self

    def stop(self, timeout: float = 30.0) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            with contextlib.suppress(RuntimeError):  # the loop may be closing already
                self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)

    def __enter__(self) -> ReceiverThread:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
