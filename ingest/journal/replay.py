"""Produce the ack journal again into a new broker: the Kafka and catalog edge of a replay.

Run it after a new embedded broker started and before the lake writer starts, so that the old
cluster's checkpoints are still in the catalog (the writer forgets other clusters' checkpoints
when it starts) and nothing is being committed meanwhile. Entries the lake holds are skipped;
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
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from emberlake.errors import EmberlakeError, JournalError
from emberlake.settings import Settings
from ingest.journal.policy import (
    TopicPartition,
    old_segments,
    partitions_by_cluster,
    plan_replay,
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


def _read_marks(
    settings: Settings, partitions: dict[str, set[TopicPartition]]
) -> tuple[dict[tuple[str, str, int], int | None], Any]:
    """The old clusters' checkpoints, and a lookup of table offsets (both from the catalog)."""
    from lake.catalog import open_catalog
    from lake.offsets import CheckpointStore, TableOffsets

    catalog = open_catalog(settings)
    checkpoints: dict[tuple[str, str, int], int | None] = {}
    for cluster, tps in partitions.items():
        loaded = CheckpointStore(catalog, cluster).load(sorted(tps))
        checkpoints.update({(cluster, t, p): o for (t, p), o in loaded.items()})
    cache: dict[tuple[str, str, str, TopicPartition], int | None] = {}

    def table_offset(cluster: str, namespace: str, table: str, tp: TopicPartition) -> int | None:
        key = (cluster, namespace, table, tp)
        if key not in cache:
            cache[key] = TableOffsets(catalog, cluster).read(namespace, table, tp)
        return cache[key]

    return checkpoints, table_offset


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

    Raises JournalError when the lake's marks cannot be read or the broker does not take the
    entries; the old segments are then kept. After a failed produce, replay into a fresh broker:
    this one may hold some of the entries already.
    """
    store = JournalStore(directory)
    segments = {name: store.read(name) for name in store.names()}
    for name, seg in list(segments.items()):
        if seg.header is None:
            # Not even a header: a crash right after creating the file, or foreign data. Keep
            # it for inspection under a name nothing reads.
            log.warning("journal segment %s is unreadable (%s); set aside", name, seg.damage)
            with contextlib.suppress(OSError):
                os.replace(directory / name, directory / (name + ".damaged"))
            del segments[name]
    if dropped := store.drop_superseded(segments):
        log.info("deleted %d journal segments an earlier replay superseded", len(dropped))
    old = old_segments(segments, cluster)
    report = ReplayReport(cluster)
    if not old:
        return report
    try:
        checkpoints, table_offset = _read_marks(settings, partitions_by_cluster(old))
    except Exception as exc:
        raise JournalError(
            f"cannot read the lake's checkpoints to replay the receiver's journal ({exc}); the "
            "journal is kept: make the catalog readable and start again"
        ) from exc
    plan = plan_replay(old, checkpoints, table_offset, Topics(settings.kafka.topic_prefix))
    produced = produce_entries(settings, plan.entries)
    if produced:
        now = time.time_ns()
        header = SegmentHeader(cluster, now, os.getpid(), supersedes=tuple(plan.segments))
        store.write_segment(header, produced, segment_name(now, os.getpid(), 0, CLOSED_SUFFIX))
    store.delete(plan.segments)
    report.replayed, report.skipped = len(produced), plan.skipped
    report.segments, report.damaged = len(plan.segments), plan.damaged
    log.info("%s", report)
    return report
