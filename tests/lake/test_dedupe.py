"""Requests a client sent twice are recognised by their request id (pure logic)."""

from __future__ import annotations

from ingest.topics import HEADER_REQUEST_ID
from lake.batch import Record
from lake.dedupe import RecentRequests


def _record(offset: int, request: str | None, partition: int = 0) -> Record:
    headers = () if request is None else ((HEADER_REQUEST_ID, request.encode()),)
    return Record("p.otlp.spans", partition, offset, b"t/s", b"v", headers)


def test_the_later_copy_is_the_duplicate() -> None:
    recent = RecentRequests()
    assert not recent.duplicate(_record(10, "a"))
    assert not recent.duplicate(_record(11, "b"))
    assert recent.duplicate(_record(14, "a"))
    assert recent.dropped == 1


def test_reading_again_after_a_rewind_gives_the_same_answers() -> None:
    recent = RecentRequests()
    first = [recent.duplicate(_record(o, r)) for o, r in ((10, "a"), (11, "b"), (12, "a"))]
    again = [recent.duplicate(_record(o, r)) for o, r in ((10, "a"), (11, "b"), (12, "a"))]
    assert first == again == [False, False, True]


def test_partitions_and_records_without_ids_are_independent() -> None:
    recent = RecentRequests()
    assert not recent.duplicate(_record(1, "a", partition=0))
    assert not recent.duplicate(_record(1, "a", partition=1))
    assert not recent.duplicate(_record(2, None))
    assert not recent.duplicate(_record(3, None))


def test_memory_is_bounded_and_forgotten_with_the_partition() -> None:
    recent = RecentRequests(remembered=2)
    for offset, request in enumerate("abc"):
        recent.duplicate(_record(offset, request))
    assert not recent.duplicate(_record(5, "a"))  # evicted: no longer known
    assert recent.duplicate(_record(6, "c"))
    recent.forget([("p.otlp.spans", 0)])
    assert not recent.duplicate(_record(7, "c"))
