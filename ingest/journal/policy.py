"""What the ack journal keeps, deletes and produces again (pure logic, no I/O).

The lake marks how far it has stored each Kafka partition of a broker cluster (see
:mod:`lake.offsets`): every record below a partition's *checkpoint* is in the lake, and so is
every record below its table's *table offset* for that partition. A journal entry the lake holds
by either mark needs nothing more; every other entry of a dead cluster is produced again to the
new broker, per partition in the order the old broker held them. A record the writer set aside
(see :mod:`lake.batch`) is in its dead-letter table, not its signal table: the mark of that
table counts for it, so a replay does not set it aside a second time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from emberlake.errors import TenantError
from emberlake.tenancy import validate_tenant
from ingest.journal.segment import DecodedSegment, JournalEntry, SegmentHeader
from ingest.topics import HEADER_TENANT, Topics

#: The lake writer's dead-letter table, and the namespace of those whose tenant is missing or
#: invalid: the names of :mod:`lake.tables`, kept here so that the receiver does not import the
#: lake (a test holds them equal).
DEAD_LETTERS = "dead_letters"
UNROUTED_NAMESPACE = "emberlake"

#: (topic, partition)
TopicPartition = tuple[str, int]
#: (cluster, topic, partition) -> checkpoint (None: nothing checkpointed)
Checkpoints = Mapping[tuple[str, str, int], int | None]
#: (cluster, topic, partition) -> checkpoint, or None
CheckpointLookup = Callable[[str, str, int], int | None]
#: (cluster, namespace, table, (topic, partition)) -> the table's stored next offset, or None
TableOffsetLookup = Callable[[str, str, str, TopicPartition], int | None]
#: Whether the lake writer sets an entry with a valid tenant aside (decodes it: asked rarely).
SetAsideCheck = Callable[[JournalEntry], bool]


@dataclass
class SegmentSummary:
    """What trimming needs to know of a segment: its cluster and highest offset per partition."""

    cluster: str
    highest: dict[TopicPartition, int] = field(default_factory=dict)
    #: Entries in the segment.
    records: int = 0

    def add(self, entries: Iterable[JournalEntry]) -> None:
        highest = self.highest
        for e in entries:
            self.records += 1
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


def tenant_of(entry: JournalEntry) -> str | None:
    """The entry's tenant, None when missing or invalid (the writer sets those aside)."""
    raw = entry.header(HEADER_TENANT)
    if not raw:
        return None
    try:
        return validate_tenant(raw)
    except TenantError:
        return None


def in_lake(
    cluster: str,
    entry: JournalEntry,
    checkpoint: CheckpointLookup,
    table_offset: TableOffsetLookup,
    topics: Topics,
    set_aside: SetAsideCheck | None = None,
) -> bool:
    """True if the lake already holds the entry (recorded against ``cluster``), in its table or
    among the dead letters. ``set_aside`` is asked only for an entry below its dead-letter
    table's mark and not in its signal table (without it, such an entry counts as missing)."""
    mark = checkpoint(cluster, entry.topic, entry.partition)
    if mark is not None and entry.offset < mark:
        return True
    try:
        signal = topics.signal_of(entry.topic)
    except ValueError:
        return False  # not a topic the writer reads
    tenant = tenant_of(entry)
    if tenant is not None:
        stored = table_offset(cluster, tenant, signal, entry.tp)
        if stored is not None and entry.offset < stored:
            return True
    dead = table_offset(cluster, tenant or UNROUTED_NAMESPACE, DEAD_LETTERS, entry.tp)
    if dead is None or entry.offset >= dead:
        return False
    # Below the dead letters' mark: there if the writer set it aside. A record bound for its
    # signal table can be below that mark too (a crash between the commits of one batch's
    # tables), so only decoding it tells.
    return tenant is None or (set_aside is not None and set_aside(entry))


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
        set_aside: SetAsideCheck | None = None,
    ):
        self._checkpoint = checkpoint
        self._table_offset = table_offset
        self._topics = topics
        self._set_aside = set_aside
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
            if in_lake(
                cluster, entry, self._checkpoint, self._table_offset, self._topics, self._set_aside
            ):
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
