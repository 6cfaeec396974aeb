"""Committing one writer batch: every table with its offsets, then the partition checkpoints.

:class:`BatchCommitter` runs one batch at a time, in order (the ingestor hands it the next batch
only once the previous one is done), so checkpoints only ever follow complete batches. It keeps
the offsets its own commits stored; for a table it has not committed to since the partition
was assigned, it expects the offset the batch's skip decisions relied on (``Batch.floors``), so
a commit succeeds only if the table still holds what the reader assumed. It is safe to run on a
thread of its own while the ingestor reads and flattens the next batch: Parquet encoding and
file writes release the GIL.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable

import pyarrow as pa
from pyiceberg.table import Table

from emberlake.errors import CommitConflict, LakeError, UnstorableRecords
from lake.batch import Batch, TableRef
from lake.flatten import KINDS_SUFFIX
from lake.offsets import CheckpointStore, TopicPartition, offset_property, retired_offsets
from lake.tables import DEAD_LETTERS
from lake.writer import IcebergWriter, TableAppend

log = logging.getLogger(__name__)

#: A step applied to each table's rows before the commit, given the (current) table: returns the
#: rows to write (e.g. with promoted ``attr_*`` columns, Arrow fields carrying a ``doc``) and
#: table properties to set in the same commit (e.g. the schema inference state).
RowsHook = Callable[[Table, pa.Table], tuple[pa.Table, dict[str, str]]]


class BatchCommitter:
    """Commits batches through an :class:`IcebergWriter` and saves checkpoints after each."""

    def __init__(
        self,
        writer: IcebergWriter,
        checkpoints: CheckpointStore,
        hooks: Iterable[RowsHook] = (),
        keep_clusters: Collection[str] | None = None,
    ):
        self.writer = writer
        self.checkpoints = checkpoints
        self.cluster_id = checkpoints.cluster_id
        self.hooks = list(hooks)
        #: Broker clusters whose table offsets stay: this writer's own, and those the receiver's
        #: ack journal may still replay. Any other cluster's offsets are removed from a table by
        #: this writer's first commit to it. None: keep every cluster's.
        self.keep_clusters = (
            None if keep_clusters is None else frozenset(keep_clusters) | {self.cluster_id}
        )
        self._swept: set[TableRef] = set()
        #: (table, partition) -> the offset this writer's last commit stored
        self.known: dict[tuple[TableRef, TopicPartition], int | None] = {}
        self.committed_rows = 0
        self.commits = 0
        self.timings: defaultdict[str, float] = defaultdict(float)

    def forget(self, partitions: Iterable[TopicPartition] | None = None) -> None:
        """Drop what is known about these partitions (all, when None)."""
        if partitions is None:
            self.known.clear()
            return
        gone = set(partitions)
        self.known = {k: v for k, v in self.known.items() if k[1] not in gone}

    def _expected(self, ref: TableRef, tp: TopicPartition, batch: Batch) -> int | None:
        key = (ref, tp)
        if key in self.known:
            return self.known[key]
        if key in batch.floors:
            return batch.floors[key]
        raise LakeError(f"no stored offset was read for {ref} {tp}")  # a bug, not a race

    def commit(self, batch: Batch, owned: frozenset[TopicPartition]) -> dict[TopicPartition, int]:
        """Commit every table of the batch, then checkpoint the partitions still ``owned``;
        returns the checkpointed positions. On :class:`CommitConflict` or :class:`LakeError`
        nothing after the failing table is committed and no checkpoint moves."""
        try:
            for ref, table in batch.tables.items():
                if table.columns.rows == 0 or not table.partitions:
                    continue
                started = time.perf_counter()
                try:
                    rows = table.columns.to_arrow()
                except (LakeError, OSError):
                    raise
                except Exception as exc:  # a value Arrow refuses: one record spoils the batch
                    raise UnstorableRecords(
                        f"{ref[0]}.{ref[1]}: a record cannot be stored ({exc!r});"
                        " reading the batch again record by record"
                    ) from exc
                self.timings["arrow"] += time.perf_counter() - started
                self._commit_table(ref, rows, table.partitions, batch, table.columns)
        except (CommitConflict, LakeError):
            self.known.clear()
            raise
        except OSError as exc:
            # The warehouse cannot be written (or read): nothing of this batch is checkpointed,
            # so it is read again once the ingestor retries.
            self.known.clear()
            raise LakeError(f"the warehouse failed: {exc}") from exc
        ends = {tp: end for tp, end in batch.ends.items() if tp in owned}
        started = time.perf_counter()
        try:
            self.checkpoints.save(ends)
        except Exception as exc:  # only costs re-reading (and skipping) after a restart
            log.warning("could not save checkpoints: %s", exc)
        self.timings["checkpoint"] += time.perf_counter() - started
        log.debug(
            "batch: %d records, %d rows, %d skipped", batch.records, batch.rows, batch.skipped
        )
        return ends

    def _retired_offsets(self, ref: TableRef) -> frozenset[str]:
        """On this writer's first commit to a table, the offsets of clusters it need not keep."""
        if self.keep_clusters is None or ref in self._swept:
            return frozenset()
        properties = self.writer.table(*ref).properties
        return frozenset(retired_offsets(properties, self.keep_clusters))

    def _commit_table(
        self,
        ref: TableRef,
        rows: pa.Table,
        partitions: set[TopicPartition],
        batch: Batch,
        columns: object = None,
    ) -> None:
        properties: dict[str, str] = {}
        started = time.perf_counter()
        hooks = self.hooks if ref[1] != DEAD_LETTERS else []
        for hook in hooks:
            promote = getattr(hook, "promote", None)
            interned = getattr(columns, "inference_attributes", None)
            if promote is not None and interned is not None:
                # Schema inference straight from the flattener's interned attributes: each
                # distinct value is parsed once and the map columns are not re-read.
                rows, extra = promote(self.writer.table(*ref), rows, interned())
            else:
                rows, extra = hook(self.writer.table(*ref), rows)
            properties.update(extra)
        # Kind columns are for the hooks only, never table columns.
        leftover = [name for name in rows.column_names if name.endswith(KINDS_SUFFIX)]
        if leftover:
            rows = rows.drop_columns(leftover)
        self.timings["hooks"] += time.perf_counter() - started
        keys = {tp: offset_property(self.cluster_id, *tp) for tp in partitions}
        job = TableAppend(
            namespace=ref[0],
            table=ref[1],
            rows=rows,
            offsets={keys[tp]: batch.ends[tp] for tp in partitions},
            expected={keys[tp]: self._expected(ref, tp, batch) for tp in partitions},
            properties=properties,
            removals=self._retired_offsets(ref),
        )
        self.writer.append(job)
        self._swept.add(ref)
        self.timings["write"] += self.writer.last_write_seconds
        self.timings["commit"] += self.writer.last_commit_seconds
        for tp in partitions:
            self.known[(ref, tp)] = batch.ends[tp]
        self.committed_rows += rows.num_rows
        self.commits += 1
