"""Produce the ack journal again into a new broker: the Kafka and catalog edge of a replay.

Run it after a new embedded broker started and before the lake writer starts, so that the old
cluster's checkpoints are still in the catalog (the writer forgets other clusters' checkpoints
when it starts) and nothing is being committed meanwhile: ``emberlake up`` stops the writer
first; ``emberlake broker``, run apart from the writer, waits for one still running on the old
broker to commit what it had read. Without the checkpoints, the tables' own offsets (signal and
dead-letter tables) still tell what the lake holds. Entries the lake holds are skipped;
the rest are produced in order per partition, journalled under the new cluster in one durable
segment that names the segments it supersedes, and only then are the old segments deleted. A
crash at any point leaves either the old segments, or the new one (which causes the old ones to
be deleted on the next replay): never both live.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import cast

from emberlake.errors import EmberlakeError, JournalError
from emberlake.settings import Settings
from ingest.journal.policy import (
    ReplaySelection,
    SetAsideCheck,
    TopicPartition,
    old_segments,
)
from ingest.journal.segment import JournalEntry, SegmentHeader
from ingest.journal.store import CLOSED_SUFFIX, JournalStore, segment_name
from ingest.topics import Topics

log = logging.getLogger(__name__)

#: Records produced before waiting for their acknowledgements (keeps the producer queue small).
CHUNK_RECORDS = 2000
CHUNK_BYTES = 64 * 1024 * 1024


@dataclass
class ReplayReport:
    """What a replay did."""

    cluster: str
    replayed: int = 0
    #: Entries the lake already held: not produced again.
    skipped: int = 0
    #: Old segments read (and deleted).
    segments: int = 0
    damaged: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        text = (
            f"journal replay into cluster {self.cluster}: {self.replayed} records produced "
            f"again, {self.skipped} already in the lake, {self.segments} segments"
        )
        if self.damaged:
            text += f"; torn tails ignored: {'; '.join(self.damaged)}"
        return text


class LakeMarks:
    """The old clusters' checkpoints and table offsets, read from the catalog when first asked
    for and kept (no writer commits for those clusters any more, so they do not move)."""

    def __init__(self, settings: Settings):
        from lake.catalog import open_catalog

        self.catalog = open_catalog(settings)
        self._checkpoints: dict[tuple[str, str, int], int | None] = {}
        #: (namespace, table) -> its properties (None: no such table)
        self._tables: dict[tuple[str, str], Mapping[str, str] | None] = {}

    def checkpoint(self, cluster: str, topic: str, partition: int) -> int | None:
        from lake.offsets import CheckpointStore

        key = (cluster, topic, partition)
        if key not in self._checkpoints:
            loaded = CheckpointStore(self.catalog, cluster).load([(topic, partition)])
            self._checkpoints[key] = loaded[(topic, partition)]
        return self._checkpoints[key]

    def table_offset(
        self, cluster: str, namespace: str, table: str, tp: TopicPartition
    ) -> int | None:
        from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

        from lake.offsets import offset_property, parse_offset

        key = (namespace, table)
        if key not in self._tables:
            try:
                self._tables[key] = self.catalog.load_table(f"{namespace}.{table}").properties
            except (NoSuchTableError, NoSuchNamespaceError):
                self._tables[key] = None
        properties = self._tables[key]
        if properties is None:
            return None
        return parse_offset(properties.get(offset_property(cluster, *tp)))


def writer_sets_aside(topics: Topics) -> SetAsideCheck:
    """Whether the lake writer sets an entry aside as a dead letter: the writer's own routing of
    one record, checked alone as after a failed batch (decodes it)."""
    from lake.batch import Batch, Record
    from lake.tables import DEAD_LETTERS

    def check(entry: JournalEntry) -> bool:
        batch = Batch(topics, isolate=True)
        headers = cast(tuple[tuple[str, bytes], ...], entry.headers)
        record = Record(entry.topic, entry.partition, entry.offset, entry.key, entry.value, headers)
        batch.add(record, lambda _ref, _tp: None)
        return any(ref[1] == DEAD_LETTERS for ref in batch.tables)

    return check


def produce_entries(settings: Settings, entries: Sequence[JournalEntry]) -> list[JournalEntry]:
    """Produce entries to their topics and partitions, in order; return them with their new
    offsets. Raises JournalError unless every one was acknowledged."""
    from ingest.kafka import KafkaSink, ensure_topics

    if not entries:
        return []
    topics = sorted({e.topic for e in entries})
    ensure_topics(settings, topics)
    sink = KafkaSink(settings)
    try:
        partitions = {t: sink.partition_count(t) for t in topics}
        out: list[JournalEntry] = []
        start = 0
        while start < len(entries):
            end, size = start, 0
            while end < len(entries) and end - start < CHUNK_RECORDS and size < CHUNK_BYTES:
                size += len(entries[end].value)
                end += 1
            futures = []
            for e in entries[start:end]:
                # The same partition keeps each service's order; if the new topic has fewer
                # partitions, the key decides, as for any record.
                part = e.partition if e.partition < partitions.get(e.topic, 0) else None
                futures.append(sink.send(e.topic, e.key, e.value, e.headers, part))  # type: ignore[arg-type]
            timeout = settings.kafka.delivery_timeout_ms / 1000 + 30
            for e, fut in zip(entries[start:end], futures, strict=True):
                part, offset = fut.result(timeout=timeout)
                out.append(replace(e, partition=part, offset=offset))
            start = end
        return out
    except (EmberlakeError, concurrent.futures.TimeoutError) as exc:
        raise JournalError(f"cannot produce the journal again: {exc}") from exc
    finally:
        sink.close(timeout=5.0)


def replay_journal(settings: Settings, directory: Path, cluster: str) -> ReplayReport:
    """Produce every journalled entry of clusters other than ``cluster`` that the lake lacks into
    the broker (which must be ``cluster``), journal them under it and delete the old segments.

    Segments are read one at a time; only the entries to produce again stay in memory. Raises
    JournalError when the lake's marks cannot be read or the broker does not take the entries;
    the old segments are then kept. After a failed produce, replay into a fresh broker: this one
    may hold some of the entries already.
    """
    store = JournalStore(directory)
    headers: dict[str, SegmentHeader] = {}
    for name, header in store.headers().items():
        if header is None:
            # Not even a header: a crash right after creating the file, or foreign data. Keep
            # it for inspection under a name nothing reads.
            log.warning("journal segment %s has no readable header; set aside", name)
            with contextlib.suppress(OSError):
                os.replace(directory / name, directory / (name + ".damaged"))
            continue
        headers[name] = header
    if dropped := store.drop_superseded(headers):
        log.info("deleted %d journal segments an earlier replay superseded", len(dropped))
    old = old_segments(headers, cluster)
    report = ReplayReport(cluster)
    if not old:
        return report
    try:
        marks = LakeMarks(settings)
        topics = Topics(settings.kafka.topic_prefix)
        selection = ReplaySelection(
            {n: headers[n] for n in old},
            marks.checkpoint,
            marks.table_offset,
            topics,
            writer_sets_aside(topics),
        )
        for name in old:
            selection.add(name, store.read(name))
    except Exception as exc:
        raise JournalError(
            f"cannot read the receiver's journal or the lake's checkpoints to replay it ({exc});"
            " the journal is kept: make the catalog readable and start again"
        ) from exc
    produced = produce_entries(settings, selection.entries())
    if produced:
        now = time.time_ns()
        header = SegmentHeader(cluster, now, os.getpid(), supersedes=tuple(old))
        store.write_segment(header, produced, segment_name(now, os.getpid(), 0, CLOSED_SUFFIX))
    store.delete(old)
    report.replayed, report.skipped = len(produced), selection.skipped
    report.segments, report.damaged = len(old), selection.damaged
    log.info("%s", report)
    return report
