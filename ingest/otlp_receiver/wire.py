"""Protobuf wire format, just enough to cut an export request into its resource entries.

An OTLP export request is a repeated field 1 of resource entries. Concatenated field-1 records
form a valid request, so the receiver splits a request by service by slicing the original bytes
at entry boundaries: no entry that passed validation is ever serialized again. The scan reads a
few varints per resource, never per span.
"""

from __future__ import annotations

from emberlake.errors import InvalidRequest

_WIRE_VARINT = 0
_WIRE_FIXED64 = 1
_WIRE_LEN = 2
_WIRE_FIXED32 = 5
#: Tag of field 1, length-delimited: the resource entries of all three export requests.
ENTRY_TAG = bytes([(1 << 3) | _WIRE_LEN])


def _varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    end = len(buf)
    while True:
        if pos >= end:
            raise InvalidRequest("protobuf message is truncated inside a varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 64:
            raise InvalidRequest("protobuf varint is longer than 10 bytes")


def encode_varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_entry(payload: bytes) -> bytes:
    """One resource entry as a field-1 record, ready to be concatenated into a request."""
    return ENTRY_TAG + encode_varint(len(payload)) + payload


def entry_slices(raw: bytes) -> list[memoryview]:
    """The field-1 records of a serialized export request (tag, length and payload), in order.

    Other top-level fields (unknown to this protobuf version) are skipped.
    """
    view = memoryview(raw)
    out: list[memoryview] = []
    pos = 0
    end = len(view)
    while pos < end:
        start = pos
        key, pos = _varint(view, pos)
        field, wire = key >> 3, key & 7
        if wire == _WIRE_LEN:
            size, pos = _varint(view, pos)
            pos += size
        elif wire == _WIRE_VARINT:
            _, pos = _varint(view, pos)
        elif wire == _WIRE_FIXED64:
            pos += 8
        elif wire == _WIRE_FIXED32:
            pos += 4
        else:
            raise InvalidRequest(f"protobuf wire type {wire} is not supported at the top level")
        if pos > end:
            raise InvalidRequest("protobuf message is truncated")
        if field == 1 and wire == _WIRE_LEN:
            out.append(view[start:pos])
    return out
