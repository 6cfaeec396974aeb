"""The receiver's side of the ack journal: journal what Kafka acknowledged, trim what the lake has.

:class:`JournalSink` wraps the :class:`~ingest.kafka.KafkaSink`: a request's records are written
to the journal after the broker acknowledged them and before the receiver answers the client.
:class:`JournalTrimmer` is a background thread that deletes closed segments the lake's
checkpoints cover; when the catalog cannot be read it only logs, and the receiver works on.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from emberlake.errors import EmberlakeError
from emberlake.settings import Settings
from ingest.journal.policy import Checkpoints, SegmentSummary, TopicPartition, trimmable
from ingest.journal.segment import JournalEntry
from ingest.journal.store import JournalStore, JournalWriter
from ingest.kafka import Headers, KafkaSink

log = logging.getLogger(__name__)

KafkaRecord = tuple[str, bytes, bytes, Headers]
#: Reads the checkpoints of a cluster's partitions from the lake.
CheckpointReader = Callable[[str, Iterable[TopicPartition]], Checkpoints]


class JournalSink:
    """A Kafka sink whose acknowledged records are in the journal before ``send_all`` returns."""

    def __init__(self, kafka: KafkaSink, writer: JournalWriter, read_cluster: Callable[[], str]):
        self.kafka = kafka
        self.writer = writer
        self._read_cluster = read_cluster
        self._generation = -1

    def refresh_cluster(self) -> None:
        """Learn the broker's cluster id (blocking); raises BrokerError when unreachable."""
        generation = self.kafka.generation
        self.writer.set_cluster(self._read_cluster())
        self._generation = generation

    def new_cluster(self, cluster: str) -> None:
        """The broker became ``cluster`` under a running receiver (found by the trimmer):
        journal under it, and replace the producer unless it was replaced since it last
        delivered for the old cluster."""
        self.writer.set_cluster(cluster)
        if self.kafka.generation == self._generation:
            self.kafka.renew()

    async def send_all(self, records: Sequence[KafkaRecord]) -> list[tuple[int, int]]:
        positions = await self.kafka.send_all(records)
        if self.writer.cluster is None or self.kafka.generation != self._generation:
            # First delivery, or the producer was replaced (perhaps for a new broker).
            await asyncio.to_thread(self.refresh_cluster)
        entries = [
            JournalEntry(topic, part, offset, key, value, tuple(headers))
            for (topic, key, value, headers), (part, offset) in zip(records, positions, strict=True)
        ]
        if self.writer.fsync:
            await asyncio.to_thread(self.writer.append, entries)
        else:
            # A write to the page cache: cheaper than handing it to a thread.
            self.writer.append(entries)
        return positions


def lake_checkpoints(settings: Settings) -> CheckpointReader:
    """A reader of the lake's checkpoints through the catalog, opened on first use."""
    catalog: list[Any] = []

    def read(cluster: str, partitions: Iterable[TopicPartition]) -> Checkpoints:
        from lake.catalog import open_catalog
        from lake.offsets import CheckpointStore

        if not catalog:
            catalog.append(open_catalog(settings))
        try:
            loaded = CheckpointStore(catalog[0], cluster).load(partitions)
        except Exception:
            catalog.clear()  # open it afresh next time
            raise
        return {(cluster, t, p): offset for (t, p), offset in loaded.items()}

    return read


class JournalTrimmer:
    """Every ``interval`` seconds: roll an old segment, check the broker's cluster id, and
    delete the closed segments of that cluster whose entries the lake's checkpoints cover."""

    def __init__(
        self,
        writer: JournalWriter,
        read_checkpoints: CheckpointReader,
        interval: float,
        read_cluster: Callable[[], str] | None = None,
        on_new_cluster: Callable[[str], None] | None = None,
    ):
        """``on_new_cluster`` follows the broker becoming another cluster (default: the writer
        journals under the new id)."""
        self.writer = writer
        self._on_new_cluster = on_new_cluster or writer.set_cluster
        self.store: JournalStore = writer.store
        self.interval = interval
        self._read_checkpoints = read_checkpoints
        self._read_cluster = read_cluster
        self._summaries: dict[str, SegmentSummary] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="journal-trimmer", daemon=True)
        self._warned_at = 0.0
        self._primed = False
        #: Segments and entries deleted; wall-clock time of the last pass that read the lake.
        self.deleted = 0
        self.trimmed_records = 0
        self.last_trim_at: float | None = None

    def start(self) -> JournalTrimmer:
        """Trim once on the caller's thread (which loads the catalog's libraries: seconds of CPU
        better spent before serving than between requests), then every ``interval``."""
        self._pass()
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._pass()

    def _pass(self) -> None:
        try:
            self.check_cluster()
            self.trim_once()
        except Exception as exc:
            # Trimming is housekeeping: the receiver works on, and disk use grows until the
            # catalog answers again.
            now = time.monotonic()
            if now - self._warned_at > 60:
                self._warned_at = now
                log.warning("cannot trim the receiver's journal now: %s", exc)

    def check_cluster(self) -> None:
        """Follow a broker that became another cluster under a running receiver."""
        if self._read_cluster is None or self.writer.cluster is None:
            return
        try:
            cluster = self._read_cluster()
        except EmberlakeError:
            return
        if cluster and cluster != self.writer.cluster:
            log.warning(
                "the broker is now cluster %s (was %s): journalling under the new id; entries "
                "of the old one are produced again when `emberlake up` or `emberlake broker` "
                "next starts, or by `emberlake journal replay`",
                cluster,
                self.writer.cluster,
            )
            self._on_new_cluster(cluster)

    def _summary(self, name: str) -> SegmentSummary | None:
        summary = self.writer.closed_summaries.get(name) or self._summaries.get(name)
        if summary is None:
            segment = self.store.read(name)
            if segment.header is None:
                return None
            summary = self._summaries[name] = SegmentSummary.of(segment)
        return summary

    def trim_once(self) -> int:
        """Delete what the lake covers; returns how many segments went."""
        self.writer.roll_if_due()
        cluster = self.writer.cluster
        if cluster is None:
            return 0
        if not self._primed:
            # Read once even with nothing to trim: opens the catalog, or says it cannot.
            self._read_checkpoints(cluster, [])
            self._primed = True
        current = self.writer.current
        names = [n for n in self.store.closed(self.writer.pid) if n != current]
        self._summaries = {n: s for n, s in self._summaries.items() if n in names}
        mine: dict[str, SegmentSummary] = {}
        for name in names:
            summary = self._summary(name)
            if summary is not None and summary.cluster == cluster:
                mine[name] = summary
        if not mine:
            self.last_trim_at = time.time()
            return 0
        partitions = {tp for s in mine.values() for tp in s.highest}
        checkpoints = self._read_checkpoints(cluster, sorted(partitions))
        done = [name for name, summary in mine.items() if trimmable(summary, checkpoints)]
        self.store.delete(done)
        for name in done:
            self.writer.closed_summaries.pop(name, None)
            self._summaries.pop(name, None)
            self.trimmed_records += mine[name].records
        self.deleted += len(done)
        self.last_trim_at = time.time()
        if done:
            log.debug("trimmed %d journal segments the lake holds", len(done))
        return len(done)


def journal_health(writer: JournalWriter, trimmer: JournalTrimmer | None) -> dict[str, Any]:
    """The journal's counters for the receiver's ``/healthz``."""
    segments, size = writer.store.usage()
    return {
        "segments": segments,
        "bytes": size,
        "records_written": writer.appended,
        "records_trimmed": trimmer.trimmed_records if trimmer else 0,
        "segments_trimmed": trimmer.deleted if trimmer else 0,
        "write_errors": writer.errors,
        "last_trim_at": trimmer.last_trim_at if trimmer else None,
    }
