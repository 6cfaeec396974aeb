"""Helpers for intake tests: an in-process receiver, a Kafka reader, and raw gRPC and HTTP
clients for requests the SDK exporters would never send."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any

import grpc
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from emberlake.settings import Settings
from ingest.kafka import consumer_config, ensure_emberlake_topics
from ingest.otlp_receiver import ReceiverThread
from ingest.otlp_receiver.signals import OtlpSignal
from ingest.topics import Signal, Topics


@dataclass(frozen=True)
class Record:
    """One record read back from a signal topic."""

    key: bytes
    headers: dict[str, bytes]
    value: bytes
    partition: int


def read_records(
    settings: Settings, signal: Signal, count: int, timeout: float = 30.0, settle: float = 0.5
) -> list[Record]:
    """Read a topic from the start until ``count`` records arrived, then ``settle`` seconds more
    so that extra records would be seen too."""
    topic = Topics(settings.kafka.topic_prefix).signal(signal)
    consumer = Consumer(consumer_config(settings, f"reader-{uuid.uuid4().hex[:8]}"))
    consumer.assign(
        [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(settings.kafka.partitions)]
    )
    out: list[Record] = []
    deadline = time.monotonic() + timeout
    settled: float | None = None
    try:
        while time.monotonic() < deadline:
            if len(out) >= count:
                settled = settled or time.monotonic() + settle
                if time.monotonic() > settled:
                    break
            msg = consumer.poll(0.1)
            if msg is None or msg.error():
                continue
            out.append(Record(msg.key(), dict(msg.headers() or []), msg.value(), msg.partition()))
    finally:
        consumer.close()
    return out


def start_receiver(settings: Settings) -> ReceiverThread:
    ensure_emberlake_topics(settings)
    return ReceiverThread(settings).start()


@dataclass
class GrpcReply:
    code: grpc.StatusCode
    response: Any
    details: str
    trailers: dict[str, Any]


def grpc_export(
    endpoint: str,
    signal: OtlpSignal,
    body: bytes,
    metadata: tuple[tuple[str, str], ...] = (),
    compression: grpc.Compression | None = None,
    timeout: float = 30.0,
) -> GrpcReply:
    """Send raw bytes to a collector service's Export method."""
    with grpc.insecure_channel(endpoint) as channel:
        export = channel.unary_unary(
            f"/{signal.grpc_service}/Export",
            request_serializer=None,
            response_deserializer=signal.response_type.FromString,
        )
        try:
            response = export(body, metadata=metadata, compression=compression, timeout=timeout)
        except grpc.RpcError as exc:
            return GrpcReply(
                exc.code(),  # type: ignore[attr-defined]
                None,
                exc.details() or "",  # type: ignore[attr-defined]
                dict(exc.trailing_metadata() or ()),  # type: ignore[attr-defined]
            )
        return GrpcReply(grpc.StatusCode.OK, response, "", {})


@dataclass
class HttpReply:
    status: int
    headers: dict[str, str]
    body: bytes


def http_request(
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    method: str = "POST",
    timeout: float = 30.0,
) -> HttpReply:
    req = urllib.request.Request(url, body, headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return HttpReply(resp.status, dict(resp.headers), resp.read())
    except urllib.error.HTTPError as exc:
        return HttpReply(exc.code, dict(exc.headers), exc.read())
