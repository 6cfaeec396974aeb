"""From an OTLP export request to Kafka records: decode, validate, split by service (pure).

The hot path is parse -> split -> produce. The request is parsed once (protobuf, or OTLP/JSON
then serialized once); records are checked by id length; then the request is cut into one
export request per ``service.name``. When it holds one service and nothing was refused, the
original bytes go to Kafka untouched; otherwise each service's value is the concatenation of its
entries' original bytes (see :mod:`ingest.otlp_receiver.wire`), and only entries that lost
refused records are serialized again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from google.protobuf.message import DecodeError, Message

from emberlake.errors import InvalidRequest
from ingest.kafka import Headers
from ingest.otlp_receiver.otlp_json import parse_json
from ingest.otlp_receiver.signals import OtlpSignal
from ingest.otlp_receiver.validation import entry_is_valid, prune_entry
from ingest.otlp_receiver.wire import encode_entry, entry_slices
from ingest.topics import (
    HEADER_RECEIVED_US,
    HEADER_REQUEST_ID,
    HEADER_SIGNAL,
    HEADER_TENANT,
    Topics,
    record_key,
)

Encoding = Literal["protobuf", "json"]
UNKNOWN_SERVICE = "unknown_service"
SERVICE_NAME = "service.name"
#: How many distinct reasons a partial-success message lists.
_MAX_REASONS = 3


@dataclass(frozen=True)
class ServiceBatch:
    """The part of a request that belongs to one service, as a serialized export request."""

    service: str
    payload: bytes


@dataclass(frozen=True)
class DecodedExport:
    """An export request cut by service, and what was refused from it."""

    signal: OtlpSignal
    batches: list[ServiceBatch]
    rejected: int = 0
    error_message: str = ""

    def response(self) -> Message:
        """The OTLP export response: partial success only when records were refused."""
        return self.signal.response(self.rejected, self.error_message)


def service_name(resource: Any) -> str:
    """The resource's ``service.name`` string attribute, or ``unknown_service``."""
    for kv in resource.attributes:
        if kv.key == SERVICE_NAME:
            return str(kv.value.string_value) or UNKNOWN_SERVICE
    return UNKNOWN_SERVICE


def parse_protobuf(signal: OtlpSignal, data: bytes) -> Message:
    """Parse a binary export request; raise :class:`InvalidRequest` when it is not one."""
    try:
        return signal.request_type.FromString(data)
    except (DecodeError, RecursionError) as exc:
        raise InvalidRequest(
            f"body is not a protobuf {signal.request_type.__name__}: {exc}"
        ) from None


def _refusal_message(signal: OtlpSignal, rejected: int, problems: list[str]) -> str:
    reasons = list(dict.fromkeys(reversed(problems)))
    text = "; ".join(reasons[:_MAX_REASONS])
    if len(reasons) > _MAX_REASONS:
        text += f"; and {len(reasons) - _MAX_REASONS} more kinds of problem"
    return f"{rejected} {signal.item_noun} refused: {text}"


def split_by_service(signal: OtlpSignal, message: Message, raw: bytes) -> DecodedExport:
    """Validate a parsed request and cut it into one export request per service.

    ``raw`` must be the serialized form of ``message`` (the bytes it was parsed from). Refused
    records are removed from ``message`` itself.
    """
    entries: Any = getattr(message, signal.resource_field)
    services = [service_name(entry.resource) for entry in entries]
    if not services:
        return DecodedExport(signal, [])
    replaced: dict[int, bytes | None] = {}
    rejected = 0
    problems: list[str] = []
    for i, entry in enumerate(entries):
        if not entry_is_valid(signal, entry):
            pruning = prune_entry(signal, entry)
            if pruning.refused:
                rejected += pruning.refused
                problems.extend(pruning.problems)
                replaced[i] = None if pruning.emptied else encode_entry(entry.SerializeToString())
    error_message = _refusal_message(signal, rejected, problems) if rejected else ""
    if not replaced and len(set(services)) == 1:
        return DecodedExport(signal, [ServiceBatch(services[0], raw)])
    slices: Sequence[bytes | memoryview] = entry_slices(raw)
    if len(slices) != len(services):
        # Not the bytes the message came from: fall back to serializing each entry.
        slices = [encode_entry(entry.SerializeToString()) for entry in entries]
    groups: dict[str, list[bytes | memoryview]] = {}
    for i, service in enumerate(services):
        piece = replaced[i] if i in replaced else slices[i]
        if piece is not None:
            groups.setdefault(service, []).append(piece)
    batches = [ServiceBatch(service, b"".join(pieces)) for service, pieces in groups.items()]
    return DecodedExport(signal, batches, rejected, error_message)


def decode_export(
    signal: OtlpSignal, data: bytes, encoding: Encoding = "protobuf"
) -> DecodedExport:
    """Decode, validate and split an export request given as protobuf or OTLP/JSON bytes."""
    if encoding == "json":
        message = parse_json(signal, data)
        return split_by_service(signal, message, message.SerializeToString())
    message = parse_protobuf(signal, data)
    if signal.kafka_signal == "spans" and message.ByteSize() != len(data):
        # Not the canonical encoding (a field given twice in one span, say). The lake writer
        # reads spans field by field across a scope and needs each field at most once per
        # span, so such a request travels re-encoded; canonical ones travel as they came.
        data = message.SerializeToString()
    return split_by_service(signal, message, data)


def kafka_records(
    decoded: DecodedExport, tenant: str, topics: Topics, received_us: int
) -> list[tuple[str, bytes, bytes, Headers]]:
    """One Kafka record per service: (topic, key, value, headers) as the shared contract says."""
    topic = topics.signal(decoded.signal.kafka_signal)
    signal = decoded.signal.kafka_signal.encode()
    headers: Headers = (
        (HEADER_TENANT, tenant.encode()),
        (HEADER_SIGNAL, signal),
        (HEADER_RECEIVED_US, str(received_us).encode()),
    )
    return [
        (
            topic,
            record_key(tenant, batch.service),
            batch.payload,
            (*headers, (HEADER_REQUEST_ID, request_id(tenant, signal, batch.payload))),
        )
        for batch in decoded.batches
    ]


def request_id(tenant: str, signal: bytes, payload: bytes) -> bytes:
    """The ``emberlake-request-id`` of a record: equal for the same data sent again."""
    digest = hashlib.blake2b(payload, digest_size=16, person=signal[:16])
    digest.update(tenant.encode())
    return digest.hexdigest().encode()
