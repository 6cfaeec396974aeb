"""Which journal entries are trimmed, skipped and produced again (pure, no I/O)."""

from __future__ import annotations

from ingest.journal.policy import (
    DEAD_LETTERS,
    UNROUTED_NAMESPACE,
    SegmentSummary,
    SetAsideCheck,
    TopicPartition,
    in_lake,
    old_segments,
    plan_replay,
    trimmable,
)
from ingest.journal.segment import DecodedSegment, JournalEntry, SegmentHeader
from ingest.topics import Topics

TOPICS = Topics("p")
SPANS = TOPICS.signal("spans")
LOGS = TOPICS.signal("logs")


def entry(
    offset: int, partition: int = 0, topic: str = SPANS, tenant: str = "acme"
) -> JournalEntry:
    value = f"{topic}/{partition}/{offset}".encode()
    return JournalEntry(
        topic, partition, offset, b"k", value, (("emberlake-tenant", tenant.encode()),)
    )


def seg(
    cluster: str, created: int, entries: list[JournalEntry], damage: str = ""
) -> DecodedSegment:
    return DecodedSegment(SegmentHeader(cluster, created, 1), entries, damage)


def no_tables(cluster: str, namespace: str, table: str, tp: TopicPartition) -> int | None:
    return None


def test_summary_keeps_the_highest_offset_per_partition() -> None:
    summary = SegmentSummary.of(seg("a", 0, [entry(5), entry(2), entry(7, 1), entry(3, 1)]))
    assert summary.highest == {(SPANS, 0): 5, (SPANS, 1): 7}
    assert summary.records == 4


def test_trimmable_only_when_checkpoints_pass_every_entry() -> None:
    summary = SegmentSummary("a", {(SPANS, 0): 5, (SPANS, 1): 7})
    assert trimmable(summary, {("a", SPANS, 0): 6, ("a", SPANS, 1): 8})
    assert not trimmable(summary, {("a", SPANS, 0): 6, ("a", SPANS, 1): 7})  # 7 not yet stored
    assert not trimmable(summary, {("a", SPANS, 0): 6})  # partition 1 never checkpointed
    assert not trimmable(summary, {("b", SPANS, 0): 9, ("b", SPANS, 1): 9})  # other cluster
    assert trimmable(SegmentSummary("a"), {})  # nothing in it


def test_in_lake_by_checkpoint_or_by_the_table_offset() -> None:
    def offsets(cluster: str, namespace: str, table: str, tp: TopicPartition) -> int | None:
        return 10 if (cluster, namespace, table, tp) == ("a", "acme", "spans", (SPANS, 0)) else None

    def checkpoint(cluster: str, topic: str, partition: int) -> int | None:
        return 4 if (cluster, topic, partition) == ("a", SPANS, 0) else None

    assert in_lake("a", entry(3), checkpoint, offsets, TOPICS)  # below the checkpoint
    assert in_lake("a", entry(9), checkpoint, offsets, TOPICS)  # its table committed past it
    assert not in_lake("a", entry(10), checkpoint, offsets, TOPICS)
    assert not in_lake("a", entry(9, tenant="other"), checkpoint, offsets, TOPICS)
    assert not in_lake("b", entry(3), checkpoint, offsets, TOPICS)  # marks of another cluster
    assert not in_lake("a", entry(2, 1, "elsewhere"), checkpoint, offsets, TOPICS)


def test_in_lake_among_the_dead_letters_when_the_writer_sets_it_aside() -> None:
    """Below its dead-letter table's mark, an entry is in the lake if the writer sets it aside
    (asked only then); one without a valid tenant always is, in the unrouted namespace."""

    def offsets(cluster: str, namespace: str, table: str, tp: TopicPartition) -> int | None:
        marks = {
            ("acme", "spans"): 2,
            ("acme", DEAD_LETTERS): 6,
            (UNROUTED_NAMESPACE, DEAD_LETTERS): 4,
        }
        return marks.get((namespace, table)) if cluster == "a" else None

    def no_checkpoint(cluster: str, topic: str, partition: int) -> None:
        return None

    asked: list[int] = []

    def set_aside(e: JournalEntry) -> bool:
        asked.append(e.offset)
        return e.offset % 2 == 1

    def held(e: JournalEntry, check: SetAsideCheck | None = set_aside) -> bool:
        return in_lake("a", e, no_checkpoint, offsets, TOPICS, check)

    assert held(entry(1)) and held(entry(0))  # below the spans table's mark
    assert held(entry(3)) and not held(entry(4))  # set aside, or stored: decoding tells
    assert not held(entry(7))  # above both marks
    assert asked == [3, 4]
    assert not held(entry(3), None)  # nobody to ask: produced again
    assert held(entry(3, tenant="Not A Tenant"), None)  # set aside whatever it holds
    assert not held(entry(5, tenant="Not A Tenant"), None)  # above that table's mark


def test_dead_letter_names_are_the_lakes() -> None:
    from lake.tables import DEAD_LETTERS as LAKE_DEAD_LETTERS
    from lake.tables import SYSTEM_NAMESPACE

    assert (DEAD_LETTERS, UNROUTED_NAMESPACE) == (LAKE_DEAD_LETTERS, SYSTEM_NAMESPACE)


def test_replay_skips_what_the_lake_holds_and_orders_per_partition() -> None:
    segments = {
        # Acknowledgements arrive out of order across requests: offsets 3 before 2.
        "1.seg": seg("a", 100, [entry(0), entry(3), entry(2), entry(0, 1)]),
        "2.seg": seg("a", 200, [entry(4), entry(1, 1), entry(0, 0, LOGS)], "truncated frame"),
    }
    plan = plan_replay(segments, {("a", SPANS, 0): 2, ("a", SPANS, 1): None}, no_tables, TOPICS)
    assert [(e.topic, e.partition, e.offset) for e in plan.entries()] == [
        (LOGS, 0, 0),
        (SPANS, 0, 2),
        (SPANS, 0, 3),
        (SPANS, 0, 4),
        (SPANS, 1, 0),
        (SPANS, 1, 1),
    ]
    assert plan.skipped == 1
    assert plan.damaged == ["2.seg: truncated frame"]


def test_older_clusters_replay_first_and_duplicates_once() -> None:
    segments = {
        "3.seg": seg("b", 300, [entry(0), entry(1)]),
        "1.seg": seg("a", 100, [entry(7), entry(8)]),
        "2.seg": seg("a", 150, [entry(8)]),  # the same entry journalled twice
    }
    plan = plan_replay(segments, {}, no_tables, TOPICS)
    assert [e.value for e in plan.entries()] == [
        entry(7).value,
        entry(8).value,
        entry(0).value,
        entry(1).value,
    ]


def test_old_segments_are_those_of_other_clusters() -> None:
    headers = {"2.seg": SegmentHeader("new", 2, 1), "1.seg": SegmentHeader("a", 1, 1)}
    headers["3.seg"] = SegmentHeader("b", 3, 1)
    assert old_segments(headers, "new") == ["1.seg", "3.seg"]
