"""The lake writer's loop: Kafka signal topics -> flattened batches -> Iceberg, exactly once.

:class:`KafkaSource` wraps the consumer; :class:`LakeIngestor` owns the batch cycle:

1. On partition assignment, each partition resumes at its writer checkpoint (or the beginning)
   and the tables' stored offsets for it are forgotten, to be read afresh when first needed.
2. Records are routed and flattened into a :class:`~lake.batch.Batch`, skipping what their
   table already holds (see :mod:`lake.offsets`).
3. When the batch is full (``batch_max_rows``) or old (``batch_max_seconds``), each table is
   committed with its offsets (:class:`~lake.writer.IcebergWriter`), then the checkpoints are
   saved, then the consumer group offsets are committed (for monitoring only).
4. If a commit finds that another writer moved this writer's offsets, the batch is dropped and
   every assigned partition is sought back to its checkpoint.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any, cast

import pyarrow as pa
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message
from confluent_kafka import TopicPartition as KafkaPartition
from pyiceberg.table import Table

from emberlake.errors import CommitConflict, LakeError
from emberlake.settings import Settings
from ingest.kafka import consumer_config
from ingest.topics import Topics
from lake.batch import Batch, Record, TableRef
from lake.offsets import CheckpointStore, TopicPartition, offset_property
from lake.writer import IcebergWriter, TableAppend

log = logging.getLogger(__name__)

#: Records fetched per poll; a record holds a whole export request (often hundreds of rows).
POLL_RECORDS = 64

#: A step applied to each table's rows before the commit, given the (current) table: returns the
#: rows to write (e.g. with promoted ``attr_*`` columns, Arrow fields carrying a ``doc``) and
#: table properties to set in the same commit (e.g. the schema inference state).
RowsHook = Callable[[Table, pa.Table], tuple[pa.Table, dict[str, str]]]


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


class LakeIngestor:
    """Consumes the signal topics into the lake until told to stop."""

    def __init__(
        self,
        settings: Settings,
        source: KafkaSource,
        writer: IcebergWriter,
        checkpoints: CheckpointStore,
        hooks: Iterable[RowsHook] = (),
    ):
        self.settings = settings
        self.source = source
        self.writer = writer
        self.checkpoints = checkpoints
        self.cluster_id = checkpoints.cluster_id
        self.hooks = list(hooks)
        self.topics = Topics(settings.kafka.topic_prefix)
        self.batch = Batch(self.topics)
        #: (table, partition) -> the table's stored offset, as this writer last knew it
        self.known: dict[tuple[TableRef, TopicPartition], int | None] = {}
        self.assigned: set[TopicPartition] = set()
        self.committed_rows = 0
        self.commits = 0
        #: seconds spent per stage (consume, flatten, arrow, write, commit, checkpoint)
        self.timings: defaultdict[str, float] = defaultdict(float)

    # -- rebalance -------------------------------------------------------------------------
    def _on_assign(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        checkpoints = self.checkpoints.load(partitions)
        self._forget(partitions)
        self.assigned.update(partitions)
        log.info("assigned %s from checkpoints %s", partitions, checkpoints)
        return {tp: _start(checkpoints[tp]) for tp in partitions}

    def _on_revoke(self, partitions: list[TopicPartition]) -> None:
        log.info("revoking %s: committing the current batch first", partitions)
        self.flush()
        self._forget(partitions)
        self.assigned.difference_update(partitions)

    def _on_lost(self, partitions: list[TopicPartition]) -> None:
        log.warning("lost %s: dropping the current batch", partitions)
        self.batch = Batch(self.topics)
        self._forget(partitions)
        self.assigned.difference_update(partitions)

    def _forget(self, partitions: Iterable[TopicPartition]) -> None:
        gone = set(partitions)
        self.known = {k: v for k, v in self.known.items() if k[1] not in gone}

    # -- offsets ---------------------------------------------------------------------------
    def _committed(self, ref: TableRef, tp: TopicPartition) -> int | None:
        key = (ref, tp)
        if key not in self.known:
            prop = offset_property(self.cluster_id, *tp)
            self.known[key] = self.writer.stored_offsets(*ref, [prop])[prop]
        return self.known[key]

    # -- the loop --------------------------------------------------------------------------
    def subscribe(self) -> None:
        self.source.subscribe(
            self.topics.all_signals, self._on_assign, self._on_revoke, self._on_lost
        )

    def poll_once(self, timeout: float = 0.2) -> int:
        """Consume what arrives within ``timeout`` and flush when the batch is due."""
        lake = self.settings.lake
        if self.batch.started is not None:
            timeout = max(0.0, min(timeout, lake.batch_max_seconds - self.batch.age()))
        # Few records per poll (each holds hundreds of rows) so a batch ends near its row limit.
        started = time.perf_counter()
        records = self.source.poll(POLL_RECORDS, timeout)
        polled = time.perf_counter()
        for record in records:
            self.batch.add(record, self._committed)
        self.timings["consume"] += polled - started
        self.timings["flatten"] += time.perf_counter() - polled
        if self.batch.records and (
            self.batch.rows >= lake.batch_max_rows or self.batch.age() >= lake.batch_max_seconds
        ):
            self.flush()
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
            self.flush()
        finally:
            self.source.close()

    def flush(self) -> None:
        """Commit the batch: every table, then the checkpoints, then the group offsets."""
        batch, self.batch = self.batch, Batch(self.topics)
        if not batch.records:
            return
        try:
            for ref, table in batch.tables.items():
                if table.columns.rows == 0 or not table.partitions:
                    continue
                started = time.perf_counter()
                rows = table.columns.to_arrow()
                self.timings["arrow"] += time.perf_counter() - started
                self._commit_table(ref, rows, table.partitions, batch)
        except (CommitConflict, LakeError) as exc:
            log.warning("batch dropped (%s); resuming assigned partitions from checkpoints", exc)
            self._rewind()
            return
        ends = {tp: end for tp, end in batch.ends.items() if tp in self.assigned}
        started = time.perf_counter()
        try:
            self.checkpoints.save(ends)
        except Exception as exc:  # only costs re-reading (and skipping) after a restart
            log.warning("could not save checkpoints: %s", exc)
        self.source.commit(ends)
        self.timings["checkpoint"] += time.perf_counter() - started
        log.debug(
            "batch: %d records, %d rows, %d skipped", batch.records, batch.rows, batch.skipped
        )

    def _commit_table(
        self, ref: TableRef, rows: pa.Table, partitions: set[TopicPartition], batch: Batch
    ) -> None:
        properties: dict[str, str] = {}
        for hook in self.hooks:
            rows, extra = hook(self.writer.table(*ref), rows)
            properties.update(extra)
        keys = {tp: offset_property(self.cluster_id, *tp) for tp in partitions}
        job = TableAppend(
            namespace=ref[0],
            table=ref[1],
            rows=rows,
            offsets={keys[tp]: batch.ends[tp] for tp in partitions},
            expected={keys[tp]: self._committed(ref, tp) for tp in partitions},
            properties=properties,
        )
        self.writer.append(job)
        self.timings["write"] += self.writer.last_write_seconds
        self.timings["commit"] += self.writer.last_commit_seconds
        for tp in partitions:
            self.known[(ref, tp)] = batch.ends[tp]
        self.committed_rows += rows.num_rows
        self.commits += 1

    def _rewind(self) -> None:
        """Forget everything learnt and seek every assigned partition back to its checkpoint."""
        self.known.clear()
        assigned = sorted(self.assigned)
        if not assigned:
            return
        checkpoints = self.checkpoints.load(assigned)
        self.source.rewind({tp: _start(checkpoints[tp]) for tp in assigned})


def build_ingestor(settings: Settings, hooks: Iterable[RowsHook] = ()) -> LakeIngestor:
    """An ingestor wired to the configured broker and catalog (topics must exist)."""
    from ingest.kafka import cluster_id
    from lake.catalog import open_catalog
    from lake.maintenance import SnapshotExpiry

    catalog = open_catalog(settings)
    writer = IcebergWriter(catalog, SnapshotExpiry.from_settings(settings))
    checkpoints = CheckpointStore(catalog, cluster_id(settings))
    return LakeIngestor(settings, KafkaSource(settings), writer, checkpoints, hooks)
