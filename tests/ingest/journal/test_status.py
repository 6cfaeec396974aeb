"""Counting a journal for ``emberlake journal status`` (pure: segments and marks given)."""

from __future__ import annotations

from ingest.journal.segment import DecodedSegment, JournalEntry, SegmentHeader
from ingest.journal.status import HeldCheck, JournalStatus, StatusTally

S = 1_000_000_000


def seg(cluster: str, created_s: int, offsets: range, damage: str = "") -> DecodedSegment:
    entries = [JournalEntry("p.otlp.spans", 0, o, None, b"v") for o in offsets]
    return DecodedSegment(SegmentHeader(cluster, created_s * S, 1), entries, damage)


def below(mark: int) -> HeldCheck:
    def held(cluster: str, entry: JournalEntry) -> bool:
        return cluster == "old" and entry.offset < mark

    return held


def test_what_a_replay_would_produce_is_what_other_clusters_lack() -> None:
    status = JournalStatus("j", "new", taken_ns=100 * S)
    tally = StatusTally(status, below(3))
    tally.add("1.seg", 10, seg("old", 40, range(5)), superseded=False)
    tally.add("2.seg", 20, seg("old", 50, range(5, 7), "truncated frame at byte 9"), False)
    tally.add("3.seg", 30, seg("new", 60, range(4)), superseded=False)
    tally.add("4.seg", 5, DecodedSegment(None, damage="no header"), superseded=False)
    assert (status.segments, status.bytes, status.records) == (4, 65, 11)
    assert status.oldest_age == 60.0
    old, new = status.clusters["old"], status.clusters["new"]
    assert (old.segments, old.records, old.in_lake, old.lacking) == (2, 7, 3, 4)
    assert (new.records, new.in_lake) == (4, 0)
    assert status.to_replay == 4  # the current cluster's entries are still in the broker
    assert status.damaged == ["2.seg: truncated frame at byte 9", "4.seg: no header"]
    assert "would produce 4 records again" in status.text()
    # Unreachable broker: the next one is a new cluster, so every cluster's lack counts.
    status.current_cluster = None
    assert status.to_replay == 8


def test_superseded_segments_are_not_counted_again() -> None:
    status = JournalStatus("j", "new", taken_ns=100 * S)
    tally = StatusTally(status, below(0))
    tally.add("1.seg", 10, seg("old", 40, range(5)), superseded=True)
    tally.add("2.seg", 10, seg("new2", 50, range(5)), superseded=False)
    assert status.superseded == ["1.seg"] and list(status.clusters) == ["new2"]
    assert status.records == 10 and status.to_replay == 5


def test_a_lake_failing_half_way_makes_the_lakes_share_unknown() -> None:
    calls: list[int] = []

    def flaky(cluster: str, entry: JournalEntry) -> bool:
        calls.append(entry.offset)
        if len(calls) > 2:
            raise OSError("catalog gone")
        return True

    status = JournalStatus("j", "new", taken_ns=100 * S)
    tally = StatusTally(status, flaky)
    tally.add("1.seg", 10, seg("old", 40, range(2)), superseded=False)
    assert status.clusters["old"].in_lake == 2
    tally.add("2.seg", 10, seg("old2", 50, range(2)), superseded=False)
    tally.add("3.seg", 10, seg("old3", 60, range(2)), superseded=False)
    assert status.lake_error == "catalog gone" and len(calls) == 3
    assert all(c.in_lake is None for c in status.clusters.values())
    assert status.records == 6 and status.to_replay is None
    assert status.as_dict()["lake_error"] == "catalog gone"
    assert "an unknown number of records" in status.text()
