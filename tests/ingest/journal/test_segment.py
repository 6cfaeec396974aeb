"""The journal's segment format: round trips, and torn or damaged tails (pure, no I/O)."""

from __future__ import annotations

import pytest

from ingest.journal.segment import (
    FRAME,
    MAGIC,
    JournalEntry,
    SegmentHeader,
    decode_header,
    decode_segment,
    encode_entries,
    encode_header,
)

HEADER = SegmentHeader("cluster-a", 1_700_000_000_000_000_000, 4242, supersedes=("x.seg",))


def entry(offset: int, partition: int = 0, value: bytes = b"payload") -> JournalEntry:
    return JournalEntry(
        topic="p.otlp.spans",
        partition=partition,
        offset=offset,
        key=b"default/checkout",
        value=value,
        headers=(("emberlake-tenant", b"default"), ("emberlake-request-id", b"abc")),
    )


def segment(entries: list[JournalEntry]) -> bytes:
    return encode_header(HEADER) + encode_entries(entries)


def test_round_trip_keeps_every_field() -> None:
    entries = [
        entry(0),
        entry(1, partition=3, value=b""),
        JournalEntry("t", 2, 9, None, b"\x00\xff" * 100, (("h", None), ("", b""))),
    ]
    decoded = decode_segment(segment(entries))
    assert decoded.header == HEADER
    assert decoded.entries == entries
    assert decoded.damage == ""
    # The header alone, from the start of the file.
    assert decode_header(segment(entries)[:200]) == HEADER


def test_an_empty_segment_has_its_header_only() -> None:
    decoded = decode_segment(encode_header(HEADER))
    assert (decoded.header, decoded.entries, decoded.damage) == (HEADER, [], "")


@pytest.mark.parametrize("cut", [1, FRAME.size - 1, FRAME.size, FRAME.size + 5])
def test_a_torn_last_entry_is_ignored_and_reported(cut: int) -> None:
    whole = segment([entry(0), entry(1)])
    last = encode_entries([entry(2)])
    decoded = decode_segment(whole + last[:cut])
    assert [e.offset for e in decoded.entries] == [0, 1]
    assert "truncated" in decoded.damage


def test_a_corrupt_entry_ends_the_segment_there() -> None:
    data = bytearray(segment([entry(0), entry(1), entry(2)]))
    data[-3] ^= 0xFF  # inside the last entry's value
    decoded = decode_segment(bytes(data))
    assert [e.offset for e in decoded.entries] == [0, 1]
    assert "checksum" in decoded.damage


def test_a_huge_length_is_damage_not_an_allocation() -> None:
    data = segment([entry(0)]) + FRAME.pack(0xFFFFFFFF, 0) + b"junk"
    decoded = decode_segment(data)
    assert len(decoded.entries) == 1 and decoded.damage


@pytest.mark.parametrize(
    "data", [b"", b"not a journal", MAGIC, MAGIC + b"\x05\x00", encode_header(HEADER)[:-2]]
)
def test_unreadable_starts_give_no_header(data: bytes) -> None:
    decoded = decode_segment(data)
    assert decoded.header is None
    assert decoded.entries == [] and decoded.damage
    assert decode_header(data) is None
