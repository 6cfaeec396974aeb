"""OTLP/JSON: the JSON encoding of OTLP messages, to and from protobuf messages.

OTLP/JSON is the protobuf JSON mapping with one difference that matters: trace and span ids are
hex strings, not base64. Incoming ids are rewritten to base64 before ``ParseDict`` so the
standard mapping does the rest (lowerCamelCase or original field names, enums as ints, 64-bit
ints as strings or numbers, unknown fields ignored as the OTLP spec asks of receivers).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

from emberlake.errors import InvalidRequest
from ingest.otlp_receiver.signals import OtlpSignal

#: An id that is not hex becomes this one-byte id, which validation rejects as the wrong length:
#: one bad id costs one record (partial success), not the whole request.
_BAD_ID = base64.b64encode(b"\xff").decode()

_ID_KEYS = (
    ("traceId", "trace_id"),
    ("spanId", "span_id"),
    ("parentSpanId", "parent_span_id"),
)
_METRIC_DATA = (
    ("gauge",),
    ("sum",),
    ("histogram",),
    ("exponentialHistogram", "exponential_histogram"),
    ("summary",),
)


def _field(obj: Any, names: tuple[str, ...]) -> Any:
    if isinstance(obj, dict):
        for name in names:
            if name in obj:
                return obj[name]
    return None


def _each(objs: Any, names: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    """The dicts in the list field ``names`` of every dict in ``objs``; other shapes are skipped
    here and reported by ``ParseDict``."""
    for obj in objs:
        items = _field(obj, names)
        if isinstance(items, list):
            yield from (i for i in items if isinstance(i, dict))


def _hex_ids_to_base64(obj: dict[str, Any]) -> None:
    for names in _ID_KEYS:
        for name in names:
            value = obj.get(name)
            if isinstance(value, str):
                try:
                    obj[name] = base64.b64encode(bytes.fromhex(value)).decode()
                except ValueError:
                    obj[name] = _BAD_ID


def _records_with_ids(signal: OtlpSignal, doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if signal.name == "traces":
        scopes = _each(
            _each([doc], ("resourceSpans", "resource_spans")), ("scopeSpans", "scope_spans")
        )
        for span in _each(scopes, ("spans",)):
            yield span
            yield from _each([span], ("links",))
    elif signal.name == "logs":
        scopes = _each(_each([doc], ("resourceLogs", "resource_logs")), ("scopeLogs", "scope_logs"))
        yield from _each(scopes, ("logRecords", "log_records"))
    else:
        scopes = _each(
            _each([doc], ("resourceMetrics", "resource_metrics")), ("scopeMetrics", "scope_metrics")
        )
        for metric in _each(scopes, ("metrics",)):
            for kind in _METRIC_DATA:
                data = _field(metric, kind)
                for point in _each([data], ("dataPoints", "data_points")):
                    yield from _each([point], ("exemplars",))


def parse_json(signal: OtlpSignal, data: bytes) -> Message:
    """Decode an OTLP/JSON export request; raise :class:`InvalidRequest` when it is not one."""
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InvalidRequest(f"body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidRequest("an OTLP/JSON export request must be a JSON object")
    for record in _records_with_ids(signal, doc):
        _hex_ids_to_base64(record)
    message = signal.request_type()
    try:
        json_format.ParseDict(doc, message, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
        raise InvalidRequest(
            f"body is not an OTLP/JSON {signal.request_type.__name__}: {exc}"
        ) from None
    return message


def to_json(message: Message) -> bytes:
    """Encode a response or status message as compact JSON (OTLP field names, lowerCamelCase)."""
    return json.dumps(json_format.MessageToDict(message), separators=(",", ":")).encode()


def request_to_json(message: Message) -> bytes:
    """Encode an export request as OTLP/JSON, with hex ids.

    The receiver never needs this; clients and tests do, since the OpenTelemetry Python SDK has
    no JSON exporter.
    """
    return json.dumps(_ids_to_hex(json_format.MessageToDict(message))).encode()


def _ids_to_hex(doc: Any) -> Any:
    # Only id fields are dict keys named like this: attribute names are values of "key".
    if isinstance(doc, dict):
        out: dict[str, Any] = {}
        for key, value in doc.items():
            if key in ("traceId", "spanId", "parentSpanId") and isinstance(value, str):
                try:
                    out[key] = base64.b64decode(value, validate=True).hex()
                except binascii.Error:
                    out[key] = value
            else:
                out[key] = _ids_to_hex(value)
        return out
    if isinstance(doc, list):
        return [_ids_to_hex(v) for v in doc]
    return doc
