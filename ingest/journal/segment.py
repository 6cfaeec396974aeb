"""The ack journal's segment format: encoding and decoding, no I/O (pure logic).

A segment is ``MAGIC`` followed by frames; a frame is ``<u32 length><u32 crc32>`` and ``length``
bytes of payload. The first frame is the segment header (JSON: the broker cluster its entries
were produced to, when and by which process it was started, and which segments it supersedes);
every later frame is one :class:`JournalEntry`. Segments are only ever appended to, so a crash
can only leave a short or half-written last frame: decoding stops at the first frame that is
truncated or fails its checksum and reports why, keeping every entry before it.

Entry payload (little-endian)::

    u16 topic length, i32 partition, i64 offset, i32 key length (-1: no key), u16 header count,
    topic, key, then per header: u16 name length, i32 value length (-1: none), name, value;
    the rest of the payload is the record value.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field

MAGIC = b"EMBJRNL1"
FRAME = struct.Struct("<II")
_ENTRY = struct.Struct("<HiqiH")
_HEADER = struct.Struct("<Hi")
#: A frame claiming more than this is damage, not data (records are at most a few dozen MiB).
MAX_FRAME_BYTES = 1 << 30

Headers = tuple[tuple[str, bytes | None], ...]


@dataclass(frozen=True)
class JournalEntry:
    """One acknowledged record: where the broker put it, and everything needed to produce it
    again."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: Headers = ()

    @property
    def tp(self) -> tuple[str, int]:
        return (self.topic, self.partition)

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name and value is not None:
                return value.decode("utf-8", "replace")
        return None


@dataclass(frozen=True)
class SegmentHeader:
    """What a whole segment shares: the broker cluster id its offsets belong to."""

    cluster: str
    created_ns: int
    pid: int
    #: Names of segments whose entries this one holds again (written by a replay); once this
    #: segment exists, those are to be deleted.
    supersedes: tuple[str, ...] = ()


@dataclass
class DecodedSegment:
    """A segment read back: its header (None if even that was unreadable), its entries, and
    why decoding stopped early (empty when it read to the end)."""

    header: SegmentHeader | None
    entries: list[JournalEntry] = field(default_factory=list)
    damage: str = ""


def frame(payload: bytes) -> bytes:
    """Length and checksum, then the payload."""
    return FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def encode_header(header: SegmentHeader) -> bytes:
    """The start of a segment file: magic and the header frame."""
    body = {
        "cluster": header.cluster,
        "created_ns": header.created_ns,
        "pid": header.pid,
        "supersedes": list(header.supersedes),
    }
    return MAGIC + frame(json.dumps(body, sort_keys=True).encode())


def _entry_parts(entry: JournalEntry, out: list[bytes]) -> None:
    """Append one entry's frame to ``out`` in pieces: the value is not copied until the one
    join of a whole write, and its checksum continues the one of the fields before it."""
    topic = entry.topic.encode()
    key = entry.key
    fields = [
        _ENTRY.pack(
            len(topic),
            entry.partition,
            entry.offset,
            -1 if key is None else len(key),
            len(entry.headers),
        ),
        topic,
        key or b"",
    ]
    for name, value in entry.headers:
        raw = name.encode()
        fields.append(_HEADER.pack(len(raw), -1 if value is None else len(value)))
        fields.append(raw)
        fields.append(value or b"")
    prefix = b"".join(fields)
    crc = zlib.crc32(entry.value, zlib.crc32(prefix))
    out += (FRAME.pack(len(prefix) + len(entry.value), crc), prefix, entry.value)


def encode_entries(entries: Iterable[JournalEntry]) -> bytes:
    """Frames for entries, ready for one write."""
    parts: list[bytes] = []
    for entry in entries:
        _entry_parts(entry, parts)
    return b"".join(parts)


def _decode_entry(payload: memoryview) -> JournalEntry:
    topic_len, partition, offset, key_len, header_count = _ENTRY.unpack_from(payload, 0)
    at = _ENTRY.size
    topic = bytes(payload[at : at + topic_len]).decode()
    at += topic_len
    key: bytes | None = None
    if key_len >= 0:
        key = bytes(payload[at : at + key_len])
        at += key_len
    headers: list[tuple[str, bytes | None]] = []
    for _ in range(header_count):
        name_len, value_len = _HEADER.unpack_from(payload, at)
        at += _HEADER.size
        name = bytes(payload[at : at + name_len]).decode()
        at += name_len
        value: bytes | None = None
        if value_len >= 0:
            value = bytes(payload[at : at + value_len])
            at += value_len
        headers.append((name, value))
    if at > len(payload):
        raise ValueError("entry fields run past the frame")
    return JournalEntry(topic, partition, offset, key, bytes(payload[at:]), tuple(headers))


def _decode_header(payload: memoryview) -> SegmentHeader:
    body = json.loads(bytes(payload))
    return SegmentHeader(
        cluster=str(body["cluster"]),
        created_ns=int(body["created_ns"]),
        pid=int(body["pid"]),
        supersedes=tuple(str(s) for s in body.get("supersedes", ())),
    )


def _frames(data: memoryview, start: int) -> Iterable[tuple[memoryview | None, str]]:
    """Each frame's payload in turn; a final ``(None, why)`` if the data ends in damage."""
    at = start
    while at < len(data):
        if len(data) - at < FRAME.size:
            yield None, f"truncated frame header at byte {at}"
            return
        length, crc = FRAME.unpack_from(data, at)
        body_at = at + FRAME.size
        if length > MAX_FRAME_BYTES or body_at + length > len(data):
            yield None, f"truncated frame at byte {at}"
            return
        payload = data[body_at : body_at + length]
        if zlib.crc32(payload) != crc:
            yield None, f"checksum mismatch at byte {at}"
            return
        yield payload, ""
        at = body_at + length


def decode_header(data: bytes) -> SegmentHeader | None:
    """Only the header of a segment (``data`` may be just its start); None if unreadable."""
    if not data.startswith(MAGIC):
        return None
    payload, _ = next(iter(_frames(memoryview(data), len(MAGIC))), (None, ""))
    if payload is None:
        return None
    try:
        return _decode_header(payload)
    except (ValueError, KeyError, TypeError):
        return None


def decode_segment(data: bytes) -> DecodedSegment:
    """Read a segment back, stopping at the first damaged frame (see the module docs)."""
    if not data.startswith(MAGIC):
        return DecodedSegment(None, damage="not a journal segment (bad magic)")
    frames = _frames(memoryview(data), len(MAGIC))
    first = next(iter(frames), None)
    if first is None:
        return DecodedSegment(None, damage="no header")
    payload, why = first
    try:
        header = _decode_header(payload) if payload is not None else None
    except (ValueError, KeyError, TypeError):
        header, why = None, "unreadable header"
    if header is None:
        return DecodedSegment(None, damage=why)
    segment = DecodedSegment(header)
    for payload, why in frames:
        if payload is None:
            segment.damage = why
            break
        try:
            segment.entries.append(_decode_entry(payload))
        except (struct.error, ValueError, UnicodeDecodeError) as exc:
            # The checksum matched, so this is not a torn write: a bug or foreign data.
            segment.damage = f"undecodable entry: {exc}"
            break
    return segment
