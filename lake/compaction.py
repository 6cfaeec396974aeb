"""Compaction: rewrite a partition's small data files into target-sized ones, one commit each.

Sub-minute commits leave many small files, and scans pay per file. pyiceberg 0.12 has no rewrite
action, so compaction is built on its public transaction API: the small files of one partition
are read with pyiceberg's Arrow reader (columns mapped by field id, so files written before a
schema change read correctly), re-sorted by the table's sort order, written partitioned by the
table's *current* spec, and swapped in with a single ``overwrite`` snapshot that deletes exactly
those files and adds the new ones.

Running next to a live writer:

- Appends landing meanwhile only make the commit retry (pyiceberg rebuilds the snapshot on the
  new head). Compaction needs snapshot isolation for that, not serializable, since it adds no
  new rows: :func:`ensure_compaction_properties` sets ``write.delete.isolation-level`` and
  ``write.update.isolation-level`` to ``snapshot`` once. Validation still fails the commit if
  one of the rewritten files was removed concurrently; the bin is then dropped and re-planned on
  the next run, and the files written for it are deleted.
- The commit changes no table properties, so the writer's ``emberlake.offset.*`` properties
  (set in its own append transactions) are never touched.
- The partition spec is pinned (:func:`lake.layout.pin_partition_spec`): if a layout change
  lands mid-rewrite the commit fails and the group is re-planned under the new spec.

Rewritten files are written here rather than by pyiceberg's writer, for what only a rewrite of
sorted data can use: several row groups per file (see ``row_groups_per_file``), the sort order
recorded in the Parquet metadata, and Parquet Bloom filters on the columns the table property
``emberlake.bloom-filter-columns`` names (set by the layout policy for columns looked up by
value, such as ``trace_id``): a lookup then skips every row group whose filter rules the value
out, where min/max statistics of random ids rule nothing out.

Small files of an older partition spec are rewritten even when few, into the current spec: that
is how a layout change reaches recent data. Files above ``small_file_bytes`` keep their spec;
Iceberg plans every file with the spec it was written with, so they stay readable and pruned.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyiceberg.exceptions import CommitFailedException, ValidationException
from pyiceberg.expressions import AlwaysTrue
from pyiceberg.io import FileIO
from pyiceberg.io.pyarrow import (
    ArrowScan,
    _determine_partitions,
    compute_statistics_plan,
)
from pyiceberg.manifest import DataFile
from pyiceberg.partitioning import PartitionKey
from pyiceberg.table import FileScanTask, Table, TableProperties
from pyiceberg.table.locations import load_location_provider
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.sorting import NullOrder, SortDirection
from pyiceberg.transforms import IdentityTransform, TimeTransform

from emberlake.errors import LakeError
from emberlake.settings import Settings
from lake.datafiles import (
    BLOOM_FPP,
    ParquetFiles,
    bloom_filter_options,
    conform,
    write_parquet_file,
)
from lake.layout import pin_partition_spec, time_column_of

log = logging.getLogger(__name__)

#: Snapshot summary key naming what a compaction commit did ("12 files -> 1").
COMPACTION_SUMMARY = "emberlake.compaction"
_SNAPSHOT_ISOLATION = {
    TableProperties.WRITE_DELETE_ISOLATION_LEVEL: "snapshot",
    TableProperties.WRITE_UPDATE_ISOLATION_LEVEL: "snapshot",
}


@dataclass(frozen=True)
class CompactionOptions:
    """What counts as small, how big rewritten files should be, and when a partition qualifies."""

    target_file_bytes: int = 128 * 1024 * 1024
    small_file_bytes: int = 32 * 1024 * 1024
    min_files: int = 4
    #: Rewrite small files of older partition specs even when fewer than min_files.
    migrate_specs: bool = True
    #: A rewrite group takes up to this many target files of input and sorts it as a whole, so
    #: its output files hold consecutive ranges of the sort keys (a service's rows in one or
    #: two files, not spread over all): file-level pruning by the leading key works. Bounded
    #: because the group is sorted in memory.
    group_target_files: int = 4
    #: Row groups per rewritten file of the target size. Sorted data in several row groups lets
    #: DuckDB skip row groups by their min/max statistics within one file (a file holding one
    #: row group can only be skipped whole); rows per group follow from the data's bytes per row.
    row_groups_per_file: int = 16
    #: Bounds on rows per row group: below a few vectors per group the per-group overhead
    #: dominates; above DuckDB's own row group size nothing is gained.
    min_row_group_rows: int = 8 * 1024
    #: False positive rate of the Bloom filters (about 1.2 bytes per distinct value at 1 %).
    bloom_fpp: float = BLOOM_FPP
    max_row_group_rows: int = 128 * 1024

    def row_group_rows(self, rows: int, disk_bytes: int) -> int:
        """Rows per row group for data holding ``rows`` rows in ``disk_bytes`` on disk."""
        per_file = self.target_file_bytes * rows / max(1, disk_bytes)
        wanted = int(per_file / max(1, self.row_groups_per_file))
        return max(self.min_row_group_rows, min(self.max_row_group_rows, wanted))

    @classmethod
    def from_settings(cls, settings: Settings) -> CompactionOptions:
        lake = settings.lake
        return cls(
            target_file_bytes=lake.compact_target_file_bytes,
            small_file_bytes=lake.compact_small_file_bytes,
            min_files=lake.compact_min_files,
        )


@dataclass(frozen=True)
class CompactionBin:
    """Files of one partition (of one spec) to rewrite together in one commit."""

    spec_id: int
    partition: tuple[object, ...]
    files: tuple[DataFile, ...]

    @property
    def bytes(self) -> int:
        return sum(f.file_size_in_bytes for f in self.files)

    @property
    def rows(self) -> int:
        return sum(f.record_count for f in self.files)


@dataclass
class CompactionResult:
    """What one compaction run did to one table."""

    table: str
    files_before: int = 0
    files_after: int = 0
    bins: int = 0
    commits: int = 0
    conflicts: int = 0
    files_rewritten: int = 0
    files_written: int = 0
    rows_rewritten: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def ensure_compaction_properties(table: Table, attempts: int = 8) -> None:
    """Set snapshot isolation for rewrites once, so concurrent appends do not fail compaction."""
    for attempt in range(attempts):
        missing = {k: v for k, v in _SNAPSHOT_ISOLATION.items() if table.properties.get(k) != v}
        if not missing:
            return
        try:
            # Properties are merged into the catalog's current metadata: other keys (the
            # writer's offsets) are never overwritten by this commit.
            table.transaction().set_properties(missing).commit_transaction()
        except CommitFailedException:
            time.sleep(0.05 * (attempt + 1))
        table.refresh()
    raise LakeError(f"could not set compaction properties on {'.'.join(table.name())}")


def plan_compaction(table: Table, options: CompactionOptions) -> list[CompactionBin]:
    """Bins of small files, per partition, each at most ``group_target_files`` target files of
    input; a partition's files are taken in event-time order, so each bin covers a contiguous
    stretch of time and time-window pruning keeps working across bins."""
    current_spec = table.spec().spec_id
    group_bytes = options.target_file_bytes * max(1, options.group_target_files)
    time_column = time_column_of(table)
    time_id = table.schema().find_field(time_column).field_id if time_column else None
    groups: dict[tuple[int, tuple[object, ...]], list[DataFile]] = {}
    for task in table.scan().plan_files():
        f = task.file
        if task.delete_files or f.file_size_in_bytes >= options.small_file_bytes:
            continue
        key = (f.spec_id, tuple(f.partition[i] for i in range(len(f.partition))))
        groups.setdefault(key, []).append(f)
    bins: list[CompactionBin] = []
    for (spec_id, partition), files in sorted(groups.items(), key=lambda kv: repr(kv[0])):
        migrating = options.migrate_specs and spec_id != current_spec
        if len(files) < options.min_files and not migrating:
            continue
        current: list[DataFile] = []
        size = 0
        for f in sorted(files, key=lambda f: (_time_lower(f, time_id), f.file_path)):
            if current and size + f.file_size_in_bytes > group_bytes:
                bins.append(CompactionBin(spec_id, partition, tuple(current)))
                current, size = [], 0
            current.append(f)
            size += f.file_size_in_bytes
        if current:
            bins.append(CompactionBin(spec_id, partition, tuple(current)))
    # A lone small file of the current spec gains nothing from being rewritten.
    return [b for b in bins if len(b.files) > 1 or b.spec_id != current_spec]


def _time_lower(data_file: DataFile, field_id: int | None) -> int:
    """The file's lower event-time bound (microseconds; Iceberg stores it as 8 little-endian
    bytes), for ordering; files without one come first."""
    raw = (data_file.lower_bounds or {}).get(field_id) if field_id is not None else None
    return int.from_bytes(raw, "little", signed=True) if raw else -(1 << 63)


def sort_rows(table: Table, rows: pa.Table) -> pa.Table:
    """Rows ordered by the table's sort order (unchanged when the table is unsorted)."""
    order = table.sort_order()
    if order.is_unsorted or rows.num_rows == 0:
        return rows
    schema = table.schema()
    keys: list[tuple[str, str, str]] = []
    work = rows
    for i, f in enumerate(order.fields):
        name = schema.find_column_name(f.source_id)
        if name is None or name not in rows.column_names:
            continue
        direction = "descending" if f.direction == SortDirection.DESC else "ascending"
        nulls = "at_start" if f.null_order == NullOrder.NULLS_FIRST else "at_end"
        if isinstance(f.transform, IdentityTransform | TimeTransform):
            # Time transforms are monotonic: ordering by the raw value orders by the transform.
            keys.append((name, direction, nulls))
        else:
            key = f"__sort_{i}"
            source_type = schema.find_field(f.source_id).field_type
            work = work.append_column(
                key, f.transform.pyarrow_transform(source_type)(rows.column(name))
            )
            keys.append((key, direction, nulls))
    if not keys:
        return rows
    return rows.take(pc.sort_indices(work, options=pc.SortOptions(sort_keys=keys)))


def _parquet_files(
    metadata: TableMetadata,
    io: FileIO,
    rows: pa.Table,
    key: PartitionKey | None,
    file_rows: int,
    options: CompactionOptions,
) -> list[DataFile]:
    """Write one partition's sorted rows as files of ``file_rows`` rows each."""
    schema = metadata.schema()
    properties = metadata.properties
    locations = load_location_provider(metadata.location, properties)
    row_group = int(
        properties.get(TableProperties.PARQUET_ROW_GROUP_LIMIT, options.max_row_group_rows)
    )
    bloom = bloom_filter_options(properties, rows.column_names, row_group, options.bloom_fpp)
    sorting = _sorting_columns(metadata, rows.schema)
    how = ParquetFiles.of(
        metadata,
        compute_statistics_plan(schema, properties),
        row_group,
        sort_order_id=metadata.default_sort_order_id,
        sorting_columns=sorting or None,
        bloom_filter_options=bloom,
    )
    write_id = uuid.uuid4()
    out = []
    for index in range(max(1, math.ceil(rows.num_rows / max(1, file_rows)))):
        part = rows.slice(index * file_rows, file_rows)
        path = locations.new_data_location(f"00000-{index}-{write_id}.parquet", key)
        out.append(write_parquet_file(metadata, io, path, part, key, how))
    return out


def _sorting_columns(metadata: TableMetadata, schema: pa.Schema) -> list[pq.SortingColumn]:
    """The leading identity/time sort keys as Parquet sorting columns (metadata only)."""
    out = []
    table_schema = metadata.schema()
    for f in metadata.sort_order().fields:
        name = table_schema.find_column_name(f.source_id)
        if name is None or name not in schema.names:
            break
        if not isinstance(f.transform, IdentityTransform | TimeTransform):
            break
        out.append(
            pq.SortingColumn(
                schema.get_field_index(name),
                descending=f.direction == SortDirection.DESC,
                nulls_first=f.null_order == NullOrder.NULLS_FIRST,
            )
        )
    return out


def _write_bin(
    table: Table, group: CompactionBin, options: CompactionOptions
) -> tuple[int, list[DataFile]]:
    """Read, sort and write the bin's rows; returns (spec id written with, new files)."""
    metadata = table.metadata
    scan = ArrowScan(metadata, table.io, table.schema(), AlwaysTrue())
    rows = scan.to_table([FileScanTask(f) for f in group.files])
    if rows.num_rows != group.rows:
        raise LakeError(
            f"compaction read {rows.num_rows} rows from files holding {group.rows}; not rewriting"
        )
    rows = conform(sort_rows(table, rows), metadata.schema())
    # Files near the target on disk: the bin's own bytes per row say how many rows that is.
    file_rows = max(1, int(options.target_file_bytes * group.rows / max(1, group.bytes)))
    props = {
        **metadata.properties,
        TableProperties.PARQUET_ROW_GROUP_LIMIT: str(
            options.row_group_rows(group.rows, group.bytes)
        ),
    }
    sized = metadata.model_copy(update={"properties": props})
    spec = sized.spec()
    written: list[DataFile] = []
    if spec.is_unpartitioned():
        written += _parquet_files(sized, table.io, rows, None, file_rows, options)
    else:
        # Filtering by partition keeps the sorted order within each partition.
        for part in _determine_partitions(spec, sized.schema(), rows):
            written += _parquet_files(
                sized,
                table.io,
                part.arrow_table_partition.select(rows.column_names),
                part.partition_key,
                file_rows,
                options,
            )
    return sized.default_spec_id, written


def _delete_files(table: Table, files: Iterable[DataFile]) -> None:
    for f in files:
        try:
            table.io.delete(f.file_path)
        except OSError:
            log.warning("could not delete uncommitted file %s", f.file_path)


def _commit_swap(
    table: Table, group: CompactionBin, written: list[DataFile], spec_id: int, attempts: int
) -> None:
    summary = {COMPACTION_SUMMARY: f"{len(group.files)} files -> {len(written)}"}
    for attempt in range(attempts):
        if table.spec().spec_id != spec_id:
            raise CommitFailedException("the partition spec changed while compacting")
        tx = table.transaction()
        pin_partition_spec(tx, spec_id)
        with tx.update_snapshot(snapshot_properties=summary).overwrite() as overwrite:
            for f in group.files:
                overwrite.delete_data_file(f)
            for f in written:
                overwrite.append_data_file(f)
        try:
            tx.commit_transaction()
            return
        except CommitFailedException:
            # Writers committed meanwhile (more often than pyiceberg's own retries could keep
            # up with): the written files stay valid, only the snapshot is rebuilt.
            if attempt + 1 == attempts:
                raise
            table.refresh()
        except ValidationException:
            # Either the rewritten files were removed meanwhile (give up on this bin) or the
            # snapshot this attempt started from was expired (harmless: try again).
            table.refresh()
            if attempt + 1 == attempts or not _live(table, group.files):
                raise
        except Exception:
            # Outcome unknown: read back. (pyiceberg's own retry fails this way when the spec
            # changed between attempts: it rebuilds the manifest with the new spec's fields.)
            table.refresh()
            if _live(table, written):
                return
            if _live(table, group.files, any_of=True):
                raise CommitFailedException("compaction commit failed; it did not land") from None
            raise


def _live(table: Table, files: Iterable[DataFile], any_of: bool = False) -> bool:
    """Whether all (or, with ``any_of``, any) of the files are in the current snapshot."""
    live = {task.file.file_path for task in table.scan().plan_files()}
    found = [f.file_path in live for f in files]
    return any(found) if any_of else all(found)


def rewrite_bin(
    table: Table, group: CompactionBin, options: CompactionOptions, attempts: int = 10
) -> list[DataFile]:
    """Rewrite one bin and commit the swap; returns the new files.

    Raises ``CommitFailedException`` or ``ValidationException`` when the swap lost a race for
    good (the new files are then deleted again and the table is unchanged).
    """
    spec_id, written = _write_bin(table, group, options)
    try:
        _commit_swap(table, group, written, spec_id, attempts)
    except (CommitFailedException, ValidationException):
        # These guarantee the commit did not land: the new files are referenced by nothing.
        _delete_files(table, written)
        raise
    return written


def compact_table(
    table: Table,
    options: CompactionOptions,
    *,
    max_bins: int | None = None,
    stop: threading.Event | None = None,
) -> CompactionResult:
    """Compact every qualifying partition of the table, one commit per bin."""
    started = time.monotonic()
    result = CompactionResult(".".join(table.name()))
    table.refresh()
    ensure_compaction_properties(table)
    files = [t.file for t in table.scan().plan_files()]
    result.files_before = len(files)
    result.bytes_before = sum(f.file_size_in_bytes for f in files)
    bins = plan_compaction(table, options)
    result.bins = len(bins)
    for group in bins[:max_bins]:
        if stop is not None and stop.is_set():
            break
        try:
            written = rewrite_bin(table, group, options)
        except (CommitFailedException, ValidationException) as exc:
            result.conflicts += 1
            log.info(
                "compaction of a %s partition lost a race (%s); re-planned next run",
                result.table,
                exc,
            )
            table.refresh()
            continue
        result.commits += 1
        result.files_rewritten += len(group.files)
        result.files_written += len(written)
        result.rows_rewritten += group.rows
    table.refresh()
    after = [t.file for t in table.scan().plan_files()]
    result.files_after = len(after)
    result.bytes_after = sum(f.file_size_in_bytes for f in after)
    result.seconds = round(time.monotonic() - started, 3)
    return result
