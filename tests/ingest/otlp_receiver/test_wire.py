"""Cutting serialized export requests at resource boundaries."""

from __future__ import annotations

import pytest

from emberlake.errors import InvalidRequest
from ingest.otlp_receiver.wire import encode_entry, encode_varint, entry_slices
from tests.ingest.otlp_receiver.otlp_data import spans_request


def test_slices_are_the_serialized_entries_in_order() -> None:
    req = spans_request(["a", "b", "c"])
    slices = entry_slices(req.SerializeToString())
    assert [bytes(s) for s in slices] == [
        encode_entry(e.SerializeToString()) for e in req.resource_spans
    ]


def test_unknown_top_level_fields_are_skipped() -> None:
    req = spans_request(["a"])
    unknown = (
        encode_varint((7 << 3) | 0)
        + encode_varint(300)
        + encode_varint((8 << 3) | 5)
        + b"abcd"
        + encode_varint((9 << 3) | 1)
        + b"12345678"
        + encode_varint((10 << 3) | 2)
        + encode_varint(3)
        + b"xyz"
    )
    raw = unknown + req.SerializeToString() + unknown
    assert [bytes(s) for s in entry_slices(raw)] == [
        encode_entry(req.resource_spans[0].SerializeToString())
    ]


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 2**21, 2**63])
def test_varint_roundtrip_through_a_length(value: int) -> None:
    raw = b"\x0a" + encode_varint(value)
    if value < 10:
        raw += b"x" * value
        assert len(entry_slices(raw)) == 1
    else:
        with pytest.raises(InvalidRequest, match="truncated"):
            entry_slices(raw)


def test_truncated_varint_is_invalid() -> None:
    with pytest.raises(InvalidRequest, match="varint"):
        entry_slices(b"\x0a\xff")


def test_group_wire_type_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="wire type 3"):
        entry_slices(encode_varint((2 << 3) | 3))
