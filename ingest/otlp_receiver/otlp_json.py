"""OTLP/JSON: the JSON encoding of OTLP messages, to and from protobuf messages.

OTLP/JSON is the protobuf JSON mapping, except that trace and span ids are hex strings, not
base64. Field names may be lowerCamelCase or the proto names, enums numbers or names, 64-bit
integers numbers or strings; unknown fields are ignored, as the OTLP spec asks of receivers.

Decoding does not use ``json_format.ParseDict``: with the upb backend it spends about 50 us per
message looking up field names, some 0.7 ms per span. Instead each message type is compiled
once into a table (JSON name -> proto name, how to convert the value), the JSON document is
rewritten into keyword arguments in one pass, and the request is built by the message
constructor in C. Only what JSON cannot say directly is converted: ids (hex), other bytes
(base64), integers given as strings, enum names and non-finite floats.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from emberlake.errors import InvalidRequest
from ingest.otlp_receiver.signals import OTLP_SIGNALS, OtlpSignal

#: An id that is not hex becomes this one-byte id, which validation rejects as the wrong length:
#: one bad id costs one record (partial success), not the whole request.
BAD_ID = b"\xff"
#: Nesting deeper than this is refused (protobuf's own parser stops at 100).
MAX_DEPTH = 64

_ID_FIELDS = frozenset({"trace_id", "span_id", "parent_span_id"})
_INTEGERS = frozenset(
    {
        FieldDescriptor.TYPE_INT32,
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_UINT32,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_SINT32,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_FIXED32,
        FieldDescriptor.TYPE_FIXED64,
        FieldDescriptor.TYPE_SFIXED32,
        FieldDescriptor.TYPE_SFIXED64,
    }
)
_FLOATS = frozenset({FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT})
_URLSAFE = str.maketrans("-_", "+/")

# How a field's JSON value becomes a constructor argument. Strings and bools pass as they are;
# the constructor refuses wrong types.
_PASS, _MESSAGE, _INT, _FLOAT, _ENUM, _BYTES, _ID, _ATTRIBUTES = range(8)

_KEY_VALUE = "opentelemetry.proto.common.v1.KeyValue"
#: AnyValue's scalar members as JSON gives them: JSON name -> (proto name, JSON type). Most
#: attribute values are one of these; they skip the general conversion (see _attributes).
_SIMPLE_VALUES: dict[str, tuple[str, type]] = {
    "stringValue": ("string_value", str),
    "string_value": ("string_value", str),
    "boolValue": ("bool_value", bool),
    "bool_value": ("bool_value", bool),
    "doubleValue": ("double_value", float),
    "double_value": ("double_value", float),
    "intValue": ("int_value", str),
    "int_value": ("int_value", str),
}

#: (proto field name, conversion, repeated, sub-table for messages or names for enums)
_Field = tuple[str, int, bool, Any]
_TABLES: dict[str, dict[str, _Field]] = {}


def _table(descriptor: Descriptor) -> dict[str, _Field]:
    """The conversion table of a message type, by JSON name and by proto name."""
    table = _TABLES.get(descriptor.full_name)
    if table is not None:
        return table
    table = _TABLES[descriptor.full_name] = {}  # registered first: AnyValue nests itself
    for f in descriptor.fields:
        extra: Any = None
        if f.type == FieldDescriptor.TYPE_MESSAGE:
            if f.message_type.GetOptions().map_entry:
                continue  # OTLP has no map fields; a future one is ignored like an unknown field
            kind, extra = _MESSAGE, _table(f.message_type)
            if f.is_repeated and f.message_type.full_name == _KEY_VALUE:
                kind = _ATTRIBUTES
        elif f.type in _INTEGERS:
            kind = _INT
        elif f.type in _FLOATS:
            kind = _FLOAT
        elif f.type == FieldDescriptor.TYPE_ENUM:
            kind, extra = _ENUM, {v.name: v.number for v in f.enum_type.values}
        elif f.type == FieldDescriptor.TYPE_BYTES:
            kind = _ID if f.name in _ID_FIELDS else _BYTES
        else:
            kind = _PASS
        table[f.json_name] = table[f.name] = (f.name, kind, f.is_repeated, extra)
    return table


# Built now, not on first use: tables are registered before they are filled (for recursive
# types), so building them lazily could let a decode on another thread see a partial table.
for _signal in OTLP_SIGNALS:
    _table(_signal.request_type.DESCRIPTOR)


def _scalar(kind: int, value: Any, extra: Any) -> Any:
    if kind == _INT:
        return int(value) if type(value) is str else value
    if kind == _ID:
        try:
            return bytes.fromhex(value)
        except (TypeError, ValueError):
            return BAD_ID
    if kind == _ENUM:
        return extra.get(value, 0) if type(value) is str else value
    if kind == _FLOAT:
        return float(value) if type(value) is str else value
    if kind == _BYTES:
        if type(value) is not str:
            raise ValueError("bytes must be a base64 string")
        text = value.translate(_URLSAFE)
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    return value


def _arguments(obj: Any, table: dict[str, _Field], depth: int) -> dict[str, Any]:
    """Constructor keyword arguments for one message from its JSON object."""
    if type(obj) is not dict:
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    if depth > MAX_DEPTH:
        raise ValueError(f"messages nest deeper than {MAX_DEPTH} levels")
    out: dict[str, Any] = {}
    for key, value in obj.items():
        field = table.get(key)
        if field is None or value is None:
            continue
        name, kind, repeated, extra = field
        if repeated:
            if type(value) is not list:
                raise ValueError(f"{key} must be a JSON array")
            if kind == _ATTRIBUTES:
                out[name] = _attributes(value, extra, depth + 1)
            elif kind == _MESSAGE:
                out[name] = [_arguments(item, extra, depth + 1) for item in value]
            elif kind == _PASS:
                out[name] = value
            else:
                out[name] = [_scalar(kind, item, extra) for item in value]
        elif kind == _MESSAGE:
            out[name] = _arguments(value, extra, depth + 1)
        elif kind == _PASS:
            out[name] = value
        else:
            out[name] = _scalar(kind, value, extra)
    return out


def _attributes(items: list[Any], table: dict[str, _Field], depth: int) -> list[dict[str, Any]]:
    """KeyValue arguments: ``{"key": k, "value": {"stringValue": v}}`` and the other scalar
    values are taken in one step; anything else (arrays, kvlists, bytes, odd spellings) goes
    through :func:`_arguments`, which also reports what is wrong with it."""
    out: list[dict[str, Any]] = []
    for item in items:
        if type(item) is dict and len(item) == 2:
            key = item.get("key")
            value = item.get("value")
            if type(key) is str and type(value) is dict and len(value) == 1:
                ((member, scalar),) = value.items()
                simple = _SIMPLE_VALUES.get(member)
                if simple is not None and type(scalar) is simple[1]:
                    if member[0] == "i" and isinstance(scalar, str):  # int64 as JSON string
                        try:
                            scalar = int(scalar)
                        except ValueError:
                            simple = None
                    if simple is not None:
                        out.append({"key": key, "value": {simple[0]: scalar}})
                        continue
        out.append(_arguments(item, table, depth))
    return out


def parse_json(signal: OtlpSignal, data: bytes) -> Message:
    """Decode an OTLP/JSON export request; raise :class:`InvalidRequest` when it is not one."""
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InvalidRequest(f"body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidRequest("an OTLP/JSON export request must be a JSON object")
    try:
        return signal.request_type(**_arguments(doc, _table(signal.request_type.DESCRIPTOR), 0))
    except (ValueError, TypeError, OverflowError, binascii.Error, RecursionError) as exc:
        raise InvalidRequest(
            f"body is not an OTLP/JSON {signal.request_type.__name__}: {exc}"
        ) from None


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
