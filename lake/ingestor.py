"""The lake writer's loop: Kafka signal topics -> flattened batches -> Iceberg, exactly once.

:class:`KafkaSource` wraps the consumer; :class:`LakeIngestor` owns the batch cycle:

1. On partition assignment, each partition resumes at its writer checkpoint (or the beginning)
   and the tables' stored offsets for it are forgotten, to be read afresh when first needed.
   The records just below the checkpoint are read again first, only to remember their request
   ids (see :mod:`lake.dedupe`).
2. Records are routed and flattened into a :class:`~lake.batch.Batch`, skipping what their
   table already holds (see :mod:`lake.offsets`).
3. When the batch is full (``batch_max_rows``) or old (``batch_max_seconds``), it goes to the
   :class:`~lake.committer.BatchCommitter` (on its own thread while the next batch is read):
   each table's rows go through the hooks (schema inference adds promoted ``attr_*``/``res_*``
   columns) and are committed with its offsets, then the checkpoints are saved; then the consumer
   group offsets are committed (for monitoring only). One batch commits at a time, in order.
4. If a commit finds that another writer moved this writer's offsets, that batch and the one
   being read are dropped and every assigned partition is sought back to its checkpoint.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, cast

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message
from confluent_kafka import TopicPartition as KafkaPartition

from emberlake.errors import (
    BrokerError,
    CommitConflict,
    EmberlakeError,
    LakeError,
    UnstorableRecords,
)
from emberlake.settings import Settings
from ingest.kafka import consumer_config
from ingest.topics import Topics
from lake.batch import Batch, Record, TableRef
from lake.committer import BatchCommitter, RowsHook
from lake.dedupe import RecentRequests
from lake.offsets import CheckpointStore, TableOffsets, TopicPartition
from lake.writer import IcebergWriter

log = logging.getLogger(__name__)

#: Records fetched per poll; a record holds a whole export request (often hundreds of rows).
POLL_RECORDS = 64


class KafkaSource:
    """A confluent-kafka consumer in the writer's group, with rebalance callbacks."""

    def __init__(self, settings: Settings, group_id: str | None = None, **extra: Any):
        self.consumer = Consumer(
            consumer_config(settings, group_id or settings.lake.writer_group, **extra)
        )

    def subscribe(
        self,
        topics: list[str],
        on_assign: Callable[[list[TopicPartition]], dict[TopicPartition, int]],
        on_revoke: Callable[[list[TopicPartition]], None],
        on_lost: Callable[[list[TopicPartition]], None],
    ) -> None:
        """Subscribe; ``on_assign`` returns the start offset of each newly assigned partition."""

        def assign(consumer: Consumer, partitions: list[KafkaPartition]) -> None:
            starts = on_assign([(p.topic, p.partition) for p in partitions])
            consumer.assign(
                [
                    KafkaPartition(p.topic, p.partition, starts[(p.topic, p.partition)])
                    for p in partitions
                ]
            )

        def revoke(consumer: Consumer, partitions: list[KafkaPartition]) -> None:
            on_revoke([(p.topic, p.partition) for p in partitions])
            consumer.unassign()

        def lost(consumer: Consumer, partitions: list[KafkaPartition]) -> None:
            on_lost([(p.topic, p.partition) for p in partitions])
            consumer.unassign()

        self.consumer.subscribe(topics, on_assign=assign, on_revoke=revoke, on_lost=lost)

    def poll(self, max_records: int, timeout: float) -> list[Record]:
        records = []
        for msg in self.consumer.consume(num_messages=max_records, timeout=timeout):
            error = msg.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer error: %s", error)
                continue
            records.append(_record(msg))
        return records

    def assignment(self) -> list[TopicPartition]:
        return [(p.topic, p.partition) for p in self.consumer.assignment()]

    def rewind(self, positions: dict[TopicPartition, int]) -> None:
        """Restart fetching every assigned partition at the given positions.

        Re-assigning (rather than seeking) also works for partitions whose fetch has not
        started yet; the group membership is unchanged.
        """
        self.consumer.assign([KafkaPartition(t, p, o) for (t, p), o in positions.items()])

    def commit(self, positions: dict[TopicPartition, int]) -> None:
        """Commit group offsets (monitoring only: the lake's own marks decide where to resume)."""
        if not positions:
            return
        offsets = [KafkaPartition(t, p, o) for (t, p), o in positions.items()]
        try:
            self.consumer.commit(offsets=offsets, asynchronous=True)
        except Exception as exc:
            log.debug("group offset commit failed: %s", exc)

    def close(self) -> None:
        self.consumer.close()


def _record(msg: Message) -> Record:
    headers = cast(list[tuple[str, bytes]], msg.headers() or [])
    return Record(
        topic=cast(str, msg.topic()),
        partition=cast(int, msg.partition()),
        offset=cast(int, msg.offset()),
        key=cast(bytes | None, msg.key()),
        value=cast(bytes | None, msg.value()),
        headers=tuple(headers),
    )


def _start(checkpoint: int | None) -> int:
    return OFFSET_BEGINNING if checkpoint is None else checkpoint


def _lookback(checkpoint: int | None, records: int) -> int:
    """Where to start reading a newly assigned partition: ``records`` before its checkpoint
    (before the log's start, the consumer begins at the earliest record it holds)."""
    if checkpoint is None:
        return OFFSET_BEGINNING
    return max(0, checkpoint - records)


class LakeIngestor:
    """Consumes the signal topics into the lake until told to stop.

    With ``pipeline`` (the default) a batch is committed on a second thread while the next one
    is read and flattened; batches still commit one at a time and in order.
    """

    def __init__(
        self,
        settings: Settings,
        source: KafkaSource,
        committer: BatchCommitter,
        checkpoints: CheckpointStore,
        offsets: TableOffsets,
        pipeline: bool = True,
        kinds: bool = False,
    ):
        self.settings = settings
        #: Flatten with the per-entry kind columns a schema inference hook reads.
        self.kinds = kinds
        self.source = source
        self.committer = committer
        self.writer = committer.writer
        self.checkpoints = checkpoints
        self.offsets = offsets
        self.cluster_id = checkpoints.cluster_id
        self.topics = Topics(settings.kafka.topic_prefix)
        self.batch = Batch(self.topics, self.kinds)
        #: (table, partition) -> stored offset when first needed: records below it are skipped
        self.floors: dict[tuple[TableRef, TopicPartition], int | None] = {}
        self.assigned: set[TopicPartition] = set()
        #: Requests a client sent again after the receiver died unacknowledged: read, not stored.
        self.recent = RecentRequests(settings.lake.dedupe_records)
        #: Partition -> its checkpoint when assigned: records below it are only remembered.
        self.remembering: dict[TopicPartition, int] = {}
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="lake-commit") if pipeline else None
        self._inflight: Future[dict[TopicPartition, int]] | None = None
        #: Batches dropped in a row, and until when to pause reading after the last one.
        self._failures = 0
        self._paused_until = 0.0
        #: After a batch held a record the lake cannot store: check records one by one.
        self._isolate = False
        self._timings: defaultdict[str, float] = defaultdict(float)

    @property
    def committed_rows(self) -> int:
        return self.committer.committed_rows

    @property
    def commits(self) -> int:
        return self.committer.commits

    @property
    def timings(self) -> dict[str, float]:
        """Seconds spent per stage: consume, flatten, arrow, write, commit, checkpoint."""
        return {**self._timings, **self.committer.timings}

    def reset_timings(self) -> None:
        self._timings.clear()
        self.committer.timings.clear()

    # -- rebalance -------------------------------------------------------------------------
    def _on_assign(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        self._settle()
        self._check_cluster()
        checkpoints = self.checkpoints.load(partitions)
        self._forget(partitions)
        self.assigned.update(partitions)
        log.info("assigned %s from checkpoints %s", partitions, checkpoints)
        lookback = self.settings.lake.dedupe_records
        for tp in partitions:
            if checkpoints[tp]:
                self.remembering[tp] = cast(int, checkpoints[tp])
        return {tp: _lookback(checkpoints[tp], lookback) for tp in partitions}

    def _check_cluster(self) -> None:
        """Stop if the broker is no longer the cluster this writer started on.

        A restarted embedded broker is a new, empty cluster at the same address: its offsets
        start at 0 again, so checkpoints and table offsets recorded against the old cluster id
        must not be applied to it (records would be skipped as if already stored), and a Kafka
        client must not go on with state from another cluster. What was read from the old
        cluster is committed first; a restarted writer then starts on the new cluster's ids.
        """
        from ingest.kafka import cluster_id

        try:
            current = cluster_id(self.settings)
        except EmberlakeError as exc:
            log.warning("could not read the broker's cluster id (%s)", exc)
            return
        if not current or current == self.cluster_id:
            return
        self.flush(wait=True)
        raise BrokerError(
            f"the broker at {self.settings.bootstrap_servers} is now cluster {current}, not"
            f" {self.cluster_id} (a restarted memory-backed broker?): restart the writer"
        )

    def _on_revoke(self, partitions: list[TopicPartition]) -> None:
        log.info("revoking %s: committing the current batch first", partitions)
        self.flush(wait=True)
        self._forget(partitions)
        self.assigned.difference_update(partitions)

    def _on_lost(self, partitions: list[TopicPartition]) -> None:
        log.warning("lost %s: dropping the current batch", partitions)
        self._settle()
        self.batch = Batch(self.topics, self.kinds)
        self._forget(partitions)
        self.assigned.difference_update(partitions)

    def _forget(self, partitions: Iterable[TopicPartition]) -> None:
        gone = set(partitions)
        self.floors = {k: v for k, v in self.floors.items() if k[1] not in gone}
        self.committer.forget(gone)
        self.recent.forget(gone)
        for tp in gone:
            self.remembering.pop(tp, None)

    def _floor(self, ref: TableRef, tp: TopicPartition) -> int | None:
        key = (ref, tp)
        if key not in self.floors:
            self.floors[key] = self.offsets.read(*ref, tp)
        return self.floors[key]

    # -- the loop --------------------------------------------------------------------------
    def subscribe(self) -> None:
        self.source.subscribe(
            self.topics.all_signals, self._on_assign, self._on_revoke, self._on_lost
        )

    def poll_once(self, timeout: float = 0.2) -> int:
        """Consume what arrives within ``timeout`` and hand the batch over when it is due."""
        if self._inflight is not None and self._inflight.done():
            self._settle()
        pause = self._paused_until - time.monotonic()
        if pause > 0:
            # Commits keep failing (an unwritable warehouse, say): wait before reading the
            # same records again instead of spinning on them.
            time.sleep(min(pause, timeout))
            return 0
        lake = self.settings.lake
        if self.batch.started is not None:
            timeout = max(0.0, min(timeout, lake.batch_max_seconds - self.batch.age()))
        # Few records per poll (each holds hundreds of rows) so a batch ends near its row limit.
        started = time.perf_counter()
        records = self.source.poll(POLL_RECORDS, timeout)
        polled = time.perf_counter()
        try:
            for record in records:
                if record.offset < self.remembering.get(record.tp, -1):
                    self.recent.remember(record)  # below the checkpoint: stored already
                elif self.recent.duplicate(record):
                    # Consumed all the same: the checkpoint may pass it.
                    self.batch.ends[record.tp] = record.offset + 1
                else:
                    self.batch.add(record, self._floor)
        except OSError as exc:  # the tables' stored offsets cannot be read
            self._settle()
            failure = LakeError(f"the warehouse cannot be read: {exc}")
            failure.__cause__ = exc
            self._dropped(failure)
            return len(records)
        self._timings["consume"] += polled - started
        self._timings["flatten"] += time.perf_counter() - polled
        if self.batch.records and (
            self.batch.rows >= lake.batch_max_rows or self.batch.age() >= lake.batch_max_seconds
        ):
            self.flush(wait=self._pool is None)
        return len(records)

    def run(self, stop: threading.Event, drain_seconds: float = 0.0) -> None:
        """Consume until ``stop`` is set; then keep draining until the topics are quiet for a
        second (at most ``drain_seconds``), commit and close."""
        self.subscribe()
        try:
            while not stop.is_set():
                self.poll_once()
            deadline = time.monotonic() + drain_seconds
            quiet_since = time.monotonic()
            while drain_seconds > 0 and time.monotonic() < deadline:
                if self.poll_once(timeout=0.2):
                    quiet_since = time.monotonic()
                elif time.monotonic() - quiet_since > 1.0:
                    break
            self.flush(wait=True)
        finally:
            self.close()

    def close(self) -> None:
        try:
            # First: leaving the group revokes the partitions, which commits through the pool.
            self.source.close()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)

    def flush(self, wait: bool = True) -> None:
        """Hand the current batch to the committer (after the previous one finished); with
        ``wait``, also wait for it and act on the outcome."""
        self._settle()
        batch, self.batch = self.batch, Batch(self.topics, self.kinds, self._isolate)
        if batch.records:
            owned = frozenset(self.assigned)
            if self._pool is None:
                self._inflight = Future()
                try:
                    self._inflight.set_result(self.committer.commit(batch, owned))
                except (CommitConflict, LakeError) as exc:
                    self._inflight.set_exception(exc)
            else:
                self._inflight = self._pool.submit(self.committer.commit, batch, owned)
        if wait:
            self._settle()

    def _settle(self) -> None:
        """Wait for the batch being committed; commit group offsets, or on failure drop the
        batch being read and rewind every assigned partition to its checkpoint."""
        inflight, self._inflight = self._inflight, None
        if inflight is None:
            return
        try:
            ends = inflight.result()
        except (CommitConflict, LakeError) as exc:
            self._dropped(exc)
            return
        self._failures = 0
        self._isolate = False
        self.source.commit(ends)

    def _dropped(self, exc: CommitConflict | LakeError) -> None:
        """Drop the batch being read and rewind; when the warehouse failed (I/O errors, not lost
        races), pause first, longer each time in a row."""
        self._failures += 1
        delay = min(30.0, 0.25 * 2**self._failures) if _io_failure(exc) else 0.0
        log.warning(
            "batch dropped (%s); resuming assigned partitions from checkpoints in %.1fs",
            exc,
            delay,
        )
        self._paused_until = time.monotonic() + delay
        # Isolate until a batch commits: the record that spoiled it goes to the dead letters.
        self._isolate = self._isolate or isinstance(exc, UnstorableRecords)
        self._rewind()

    def _rewind(self) -> None:
        """Forget everything learnt and seek every assigned partition back to its checkpoint."""
        self.batch = Batch(self.topics, self.kinds, self._isolate)
        self.floors.clear()
        self.committer.forget()
        assigned = sorted(self.assigned)
        if not assigned:
            return
        checkpoints = self.checkpoints.load(assigned)
        self.source.rewind({tp: _start(checkpoints[tp]) for tp in assigned})


def default_hooks(settings: Settings) -> list[RowsHook]:
    """Schema inference (promoted ``attr_*``/``res_*`` columns), unless switched off with
    ``max_promoted_columns = 0``."""
    if settings.lake.max_promoted_columns <= 0:
        return []
    from lake.schema_inference import PromotionHook, PromotionPolicy

    return [PromotionHook(PromotionPolicy.from_settings(settings.lake))]


def _io_failure(exc: BaseException) -> bool:
    """True if an I/O error (an unwritable or unreachable warehouse) caused ``exc``."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def journal_clusters(settings: Settings) -> set[str] | None:
    """The broker clusters the receiver's ack journal in this data folder holds segments of (it
    may still replay them, and tells what the lake holds by their table offsets); None when a
    segment's header cannot be read yet (one being created): then no offsets are retired."""
    from ingest.journal import JournalStore, journal_dir

    try:
        headers = list(JournalStore(journal_dir(settings)).headers().values())
    except OSError:
        return None
    return None if None in headers else {h.cluster for h in headers if h is not None}


def build_ingestor(
    settings: Settings, hooks: Iterable[RowsHook] | None = None, pipeline: bool = True
) -> LakeIngestor:
    """An ingestor wired to the configured broker and catalog (topics must exist); ``hooks``
    default to :func:`default_hooks`."""
    hooks = default_hooks(settings) if hooks is None else list(hooks)
    from ingest.kafka import cluster_id
    from lake.catalog import open_catalog
    from lake.maintenance import SnapshotExpiry

    cluster = cluster_id(settings)
    # The committer thread and the consuming thread each get their own catalog connection.
    commit_catalog = open_catalog(settings)
    writer = IcebergWriter(commit_catalog, SnapshotExpiry.from_settings(settings))
    committer = BatchCommitter(
        writer,
        CheckpointStore(commit_catalog, cluster),
        hooks,
        keep_clusters=journal_clusters(settings),
    )
    catalog = open_catalog(settings)
    checkpoints = CheckpointStore(catalog, cluster)
    if removed := checkpoints.forget_other_clusters():
        log.info("removed %d checkpoints of earlier broker clusters", removed)
    return LakeIngestor(
        settings,
        KafkaSource(settings),
        committer,
        checkpoints,
        TableOffsets(catalog, cluster),
        pipeline=pipeline,
    )
