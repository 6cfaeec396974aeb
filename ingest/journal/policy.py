"""What the ack journal keeps, deletes and produces again (pure logic, no I/O).

The lake marks how far it has stored each Kafka partition of a broker cluster (see
:mod:`lake.offsets`): every record below a partition's *checkpoint* is in the lake, and so is
every record below its table's *table offset* for that partition. A journal entry the lake holds
by either mark needs nothing more; every other entry of a dead cluster is produced again to the
new broker, per partition in the order the old broker held them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from ingest.journal.segment import DecodedSegment, JournalEntry
from ingest.topics import HEADER_TENANT, Topics

#: (topic, partition)
TopicPartition = tuple[str, int]
#: (cluster, topic, partition) -> checkpoint (None: nothing checkpointed)
Checkpoints = Mapping[tuple[str, str, int], int | None]
#: (cluster, namespace, table, topic, partition) -> the table's stored next offset, or None
TableOffsetLookup = Callable[[str, str, str, TopicPartition], int | None]


@dataclass
class SegmentSummary:
    """What trimming needs to know of a segment: its cluster and highest offset per partition."""

    cluster: str
    highest: dict[TopicPartition, int] = field(default_factory=dict)

    def add(self, entries: Iterable[JournalEntry]) -> None:
        highest = self.highest
        for e in entries:
            tp = (e.topic, e.partition)
            if e.offset > highest.get(tp, -1):
                highest[tp] = e.offset

    @classmethod
    def of(cls, segment: DecodedSegment) -> SegmentSummary:
        assert segment.header is not None
        summary = cls(segment.header.cluster)
        summary.add(segment.entries)
        return summary


def trimmable(summary: SegmentSummary, checkpoints: Checkpoints) -> bool:
    """True if the lake's checkpoints cover every entry of a closed segment."""
    for (topic, part), highest in summary.highest.items():
        checkpoint = checkpoints.get((summary.cluster, topic, part))
        if checkpoint is None or highest >= checkpoint:
            return False
    return True


def table_of(entry: JournalEntry, topics: Topics) -> tuple[str, str] | None:
    """The lake table (namespace, table) an entry goes to, as the lake writer routes it; None
    when the writer would set it aside (unknown topic, no tenant)."""
    tenant = entry.header(HEADER_TENANT)
    if not tenant:
        return None
    try:
        return tenant, topics.signal_of(entry.topic)
    except ValueError:
        return None


def in_lake(
    cluster: str,
    entry: JournalEntry,
    checkpoints: Checkpoints,
    table_offset: TableOffsetLookup,
    topics: Topics,
) -> bool:
    """True if the lake already holds the entry (recorded against ``cluster``)."""
    checkpoint = checkpoints.get((cluster, entry.topic, entry.partition))
    if checkpoint is not None and entry.offset < checkpoint:
        return True
    table = table_of(entry, topics)
    if table is None:
        return False
    stored = table_offset(cluster, *table, entry.tp)
    return stored is not None and entry.offset < stored


@dataclass
class ReplayPlan:
    """Entries to produce again, in order, and what was looked at."""

    entries: list[JournalEntry]
    #: Entries the lake holds already: not produced again.
    skipped: int
    #: Names of the segments the plan covers (to delete once the replay is journalled).
    segments: list[str]
    #: Segments whose tail was torn (a crash mid-write) or damaged, and why: read up to there.
    damaged: list[str] = field(default_factory=list)


def old_segments(
    segments: Mapping[str, DecodedSegment], current_cluster: str
) -> dict[str, DecodedSegment]:
    """The segments of clusters other than the current one, by name (readable headers only)."""
    return {
        name: seg
        for name, seg in segments.items()
        if seg.header is not None and seg.header.cluster != current_cluster
    }


def partitions_by_cluster(
    segments: Mapping[str, DecodedSegment],
) -> dict[str, set[TopicPartition]]:
    """Which partitions each cluster's entries came from (whose checkpoints to read)."""
    out: dict[str, set[TopicPartition]] = {}
    for seg in segments.values():
        if seg.header is None:
            continue
        tps = out.setdefault(seg.header.cluster, set())
        tps.update(e.tp for e in seg.entries)
    return out


def plan_replay(
    segments: Mapping[str, DecodedSegment],
    checkpoints: Checkpoints,
    table_offset: TableOffsetLookup,
    topics: Topics,
) -> ReplayPlan:
    """Every entry of the given (old) segments the lake lacks, ordered per partition as the old
    broker held it: clusters in the order they were first journalled, then by offset. An entry
    journalled twice (at one offset) is produced once."""
    first_seen: dict[str, int] = {}
    for seg in segments.values():
        if seg.header is not None:
            cluster = seg.header.cluster
            created = seg.header.created_ns
            first_seen[cluster] = min(first_seen.get(cluster, created), created)
    keep: dict[tuple[int, str, str, int, int], JournalEntry] = {}
    skipped = 0
    damaged = []
    for name, seg in segments.items():
        if seg.damage:
            damaged.append(f"{name}: {seg.damage}")
        if seg.header is None:
            continue
        cluster = seg.header.cluster
        rank = first_seen[cluster]
        for entry in seg.entries:
            if in_lake(cluster, entry, checkpoints, table_offset, topics):
                skipped += 1
                continue
            keep[(rank, cluster, entry.topic, entry.partition, entry.offset)] = entry
    ordered = [keep[k] for k in sorted(keep, key=lambda k: (k[2], k[3], k[0], k[1], k[4]))]
    return ReplayPlan(ordered, skipped, sorted(segments), damaged)
