"""One export, whatever the transport: tenant, decode, split, produce, answer.

The gRPC and HTTP servers only translate their protocol to calls of :class:`ExportHandler` and
its errors back (see :mod:`ingest.otlp_receiver.status`). The handler answers only after the
broker has acknowledged every record of the request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Protocol

from emberlake.settings import Settings
from emberlake.tenancy import Authenticator
from ingest.kafka import Headers
from ingest.otlp_receiver.export import DecodedExport, Encoding, decode_export, kafka_records
from ingest.otlp_receiver.signals import OtlpSignal
from ingest.topics import Topics

log = logging.getLogger(__name__)

KafkaRecord = tuple[str, bytes, bytes, Headers]
#: Bodies at least this big are decoded on a worker thread, so that one large request does not
#: hold up every other request on the event loop for its whole decode. Smaller ones stay on the
#: loop, where they cost less than the hand-over. JSON costs some 30 times more per byte.
OFFLOAD_BYTES: dict[str, int] = {"protobuf": 2 * 1024 * 1024, "json": 128 * 1024}


class Sink(Protocol):
    """Where records go: :class:`ingest.kafka.KafkaSink`, or a double in unit tests."""

    async def send_all(self, records: Sequence[KafkaRecord]) -> object:
        """Return once every record is acknowledged; raise BrokerUnavailable otherwise."""
        ...


@dataclass
class ReceiverStats:
    """Counters since start, keyed by OTLP signal name (served on /healthz)."""

    requests: Counter[str] = field(default_factory=Counter)
    kafka_records: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {f.name: dict(getattr(self, f.name)) for f in fields(self)}


class ExportHandler:
    """Turns an authenticated export request into acknowledged Kafka records."""

    def __init__(
        self,
        settings: Settings,
        sink: Sink,
        authenticator: Authenticator | None = None,
        clock_us: Callable[[], int] = lambda: time.time_ns() // 1000,
    ):
        self.sink = sink
        self.topics = Topics(settings.kafka.topic_prefix)
        self.authenticator = authenticator or Authenticator.from_settings(settings)
        self.max_request_bytes = settings.receiver.max_request_bytes
        self.stats = ReceiverStats()
        self._clock_us = clock_us

    def tenant(self, headers: Mapping[str, str]) -> str:
        """The tenant a request acts for, from lower-cased header or metadata names."""
        return self.authenticator.tenant_for(headers)

    async def export(
        self, signal: OtlpSignal, tenant: str, data: bytes, encoding: Encoding = "protobuf"
    ) -> DecodedExport:
        """Decode and produce a request; return it once Kafka has every record.

        Raises InvalidRequest for a body that is not an export request and BrokerUnavailable
        when the broker did not acknowledge every record in time.
        """
        received_us = self._clock_us()
        stats = self.stats
        stats.requests[signal.name] += 1
        try:
            if len(data) >= OFFLOAD_BYTES[encoding]:
                decoded = await asyncio.to_thread(decode_export, signal, data, encoding)
            else:
                decoded = decode_export(signal, data, encoding)
            records = kafka_records(decoded, tenant, self.topics, received_us)
            if records:
                await self.sink.send_all(records)
        except Exception:
            stats.failed[signal.name] += 1
            raise
        stats.kafka_records[signal.name] += len(records)
        if decoded.rejected:
            stats.rejected[signal.name] += decoded.rejected
            log.info("tenant %s: %s", tenant, decoded.error_message, extra={"signal": signal.name})
        return decoded
