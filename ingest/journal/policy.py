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

from ingest.journal.segment import DecodedSegment, JournalEntry, SegmentHeader
from ingest.topics import HEADER_TENANT, Topics

#: (topic, partition)
TopicPartition = tuple[str, int]
#: (cluster, topic, partition) -> checkpoint (None: nothing checkpointed)
Checkpoints = Mapping[tuple[str, str, int], int | None]
#: (cluster, topic, partition) -> checkpoint, or None
CheckpointLookup = Callable[[str, str, int], int | None]
#: (cluster, namespace, table, (topic, partition)) -> the table's stored next offset, or None
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
    checkpoint: CheckpointLookup,
    table_offset: TableOffsetLookup,
    topics: Topics,
) -> bool:
    """True if the lake already holds the entry (recorded against ``cluster``)."""
    mark = checkpoint(cluster, entry.topic, entry.partition)
    if mark is not None and entry.offset < mark:
        return True
    table = table_of(entry, topics)
    if table is None:
        return False
    stored = table_offset(cluster, *table, entry.tp)
    return stored is not None and entry.offset < stored


def old_segments(headers: Mapping[str, SegmentHeader], current_cluster: str) -> list[str]:
    """Names of the segments of clusters other than the current one, oldest first."""
    return sorted(name for name, h in headers.items() if h.cluster != current_cluster)


class ReplaySelection:
    """The entries of old segments the lake lacks, gathered one segment at a time (so only
    those stay in memory), then ordered per partition as the old brokers held them: clusters in
    the order they were first journalled, then by offset. An entry journalled twice (at one
    offset) is produced once."""

    def __init__(
        self,
        headers: Mapping[str, SegmentHeader],
        checkpoint: CheckpointLookup,
        table_offset: TableOffsetLookup,
        topics: Topics,
    ):
        self._checkpoint = checkpoint
        self._table_offset = table_offset
        self._topics = topics
        self._rank: dict[str, int] = {}
        for h in headers.values():
            self._rank[h.cluster] = min(self._rank.get(h.cluster, h.created_ns), h.created_ns)
        self._keep: dict[tuple[str, int, int, str, int], JournalEntry] = {}
        #: Entries the lake holds already: not produced again.
        self.skipped = 0
        #: Segments whose tail was torn (a crash mid-write) or damaged, and why.
        self.damaged: list[str] = []

    def add(self, name: str, segment: DecodedSegment) -> None:
        if segment.damage:
            self.damaged.append(f"{name}: {segment.damage}")
        if segment.header is None:
            return
        cluster = segment.header.cluster
        rank = self._rank.get(cluster, segment.header.created_ns)
        for entry in segment.entries:
            if in_lake(cluster, entry, self._checkpoint, self._table_offset, self._topics):
                self.skipped += 1
                continue
            key = (entry.topic, entry.partition, rank, cluster, entry.offset)
            self._keep[key] = entry

    def entries(self) -> list[JournalEntry]:
        return [self._keep[k] for k in sorted(self._keep)]


def plan_replay(
    segments: Mapping[str, DecodedSegment],
    checkpoints: Checkpoints,
    table_offset: TableOffsetLookup,
    topics: Topics,
) -> ReplaySelection:
    """:class:`ReplaySelection` over segments already in memory, with checkpoints given."""
    headers = {n: s.header for n, s in segments.items() if s.header is not None}
    selection = ReplaySelection(
        headers, lambda c, t, p: checkpoints.get((c, t, p)), table_offset, topics
    )
    for name, segment in sorted(segments.items()):
        selection.add(name, segment)
    return selection
