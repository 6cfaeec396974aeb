"""The Iceberg edge of adaptive partitioning: statistics in, layout changes out.

Collects :class:`~lake.partitioning.TableStats` from a pyiceberg table (its live data files, their
partitions and time bounds, and the service names of recent files), reads the query daemon's
query log, and applies a :class:`~lake.partitioning.Proposal` by evolving the partition spec and
sort order in one commit while writers keep appending.

Every applied change is recorded with its reason and evidence in the table property
``emberlake.layout_changes`` (a JSON list, newest last, capped), so the history travels with the
table and is shown by ``emberlake partitioning log`` and the query daemon's table API.

Old data keeps its old spec and stays pruned under it (Iceberg plans each file with the spec it
was written with); compaction rewrites files into the current spec, which is how a layout change
reaches old data.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyiceberg.conversions import from_bytes
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.manifest import DataFile
from pyiceberg.table import Table, Transaction
from pyiceberg.table.sorting import NullOrder, SortDirection
from pyiceberg.table.update import AssertDefaultSpecId
from pyiceberg.transforms import parse_transform
from pyiceberg.types import TimestampType, TimestamptzType

from emberlake.errors import LakeError
from emberlake.settings import Settings
from lake.datafiles import BLOOM_FILTER_PROPERTY, bloom_filter_columns
from lake.partitioning import (
    Layout,
    LayoutField,
    PartitionStats,
    PolicyThresholds,
    Proposal,
    QueryRecord,
    SortKey,
    TableStats,
    Workload,
    day_stats,
    propose,
    summarize,
)
from lake.partitioning.policy import SERVICE_COLUMN

log = logging.getLogger(__name__)

#: Table property holding the layout change log (JSON list of change entries, newest last).
LAYOUT_LOG_PROPERTY = "emberlake.layout_changes"
LAYOUT_LOG_MAX = 50
#: Event-time column of each signal table.
TIME_COLUMNS = {"spans": "start_time", "logs": "time", "metrics": "time"}
_COMMIT_ATTEMPTS = 8


def time_column_of(table: Table) -> str | None:
    """The event-time column: by table name, else the first timestamp column."""
    schema = table.schema()
    name = TIME_COLUMNS.get(table.name()[-1])
    if name and name in schema.column_names:
        return name
    for f in schema.fields:
        if isinstance(f.field_type, TimestamptzType | TimestampType):
            return f.name
    return None


def _explicit_nulls_first(direction: SortDirection, nulls: NullOrder) -> bool | None:
    """None when the null order is Iceberg's default for the direction, else nulls-first."""
    first = nulls == NullOrder.NULLS_FIRST
    return None if first == (direction == SortDirection.ASC) else first


def layout_of(table: Table) -> Layout:
    """The table's current partition spec and sort order as a :class:`Layout`."""
    schema = table.schema()
    partition = tuple(
        LayoutField(schema.find_column_name(f.source_id) or str(f.source_id), str(f.transform))
        for f in table.spec().fields
    )
    sort = tuple(
        SortKey(
            schema.find_column_name(f.source_id) or str(f.source_id),
            str(f.transform),
            descending=f.direction == SortDirection.DESC,
            nulls_first=_explicit_nulls_first(f.direction, f.null_order),
        )
        for f in table.sort_order().fields
    )
    return Layout(partition, sort, bloom_filter_columns(table.properties))


def pin_partition_spec(tx: Transaction, spec_id: int | None = None) -> None:
    """Make the transaction's commit fail if the default partition spec is not ``spec_id``.

    ``spec_id`` is the spec the transaction's data files were partitioned with (default: the
    transaction's current spec). pyiceberg's automatic commit retry rebuilds the manifest with
    the table's *new* default spec but keeps data files already partitioned by the old one,
    which mislabels their partition values (and makes filters skip them). With this requirement
    the retry fails instead, and the caller rewrites its data under the new spec. Writers and
    compaction call it on every commit that adds data files.
    """
    pinned = tx.table_metadata.default_spec_id if spec_id is None else spec_id
    tx._stage((), (AssertDefaultSpecId(default_spec_id=pinned),))  # type: ignore[call-arg]


def _day_of(micros: int) -> str:
    return (dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=micros)).date().isoformat()


def _partition_values(table: Table, data_file: DataFile) -> tuple[tuple[str, str], ...]:
    spec = table.specs()[data_file.spec_id]
    schema = table.schema()
    values = []
    for pos, f in enumerate(spec.fields):
        source = schema.find_field(f.source_id).field_type
        values.append((f.name, f.transform.to_human_string(source, data_file.partition[pos])))
    return tuple(values)


def _file_services(table: Table, data_file: DataFile, field_id: int) -> set[str]:
    with table.io.new_input(data_file.file_path).open() as stream:
        parquet = pq.ParquetFile(stream)
        names = [
            f.name
            for f in parquet.schema_arrow
            if f.metadata and f.metadata.get(b"PARQUET:field_id") == str(field_id).encode()
        ]
        if not names:
            return set()
        column = parquet.read(columns=names).column(0)
    return {v for v in pc.unique(column).to_pylist() if v is not None}


def _time_bound(bounds: dict[int, bytes] | None, field_id: int | None) -> int | None:
    """A file's lower or upper timestamp bound (microseconds), if the manifest has it."""
    raw = (bounds or {}).get(field_id) if field_id is not None else None
    if raw is None:
        return None
    value = from_bytes(TimestamptzType(), raw)
    return value if isinstance(value, int) else None


def collect_stats(table: Table, *, service_sample_files: int = 32) -> TableStats:
    """Statistics of the table's live data: per partition, per day, services, time range."""
    schema = table.schema()
    time_column = time_column_of(table)
    time_id = schema.find_field(time_column).field_id if time_column else None
    files: list[DataFile] = [task.file for task in table.scan().plan_files()]
    by_partition: dict[tuple[int, tuple[tuple[str, str], ...]], list[int]] = {}
    per_file_day: list[tuple[str, int, int]] = []
    by_spec: dict[int, int] = {}
    t_min: int | None = None
    t_max: int | None = None
    service_values: set[str] = set()
    service_id = (
        schema.find_field(SERVICE_COLUMN).field_id
        if SERVICE_COLUMN in schema.column_names
        else None
    )
    unpartitioned_by_service: list[tuple[int, DataFile]] = []
    for f in files:
        values = _partition_values(table, f)
        acc = by_partition.setdefault((f.spec_id, values), [0, 0, 0])
        acc[0] += f.record_count
        acc[1] += 1
        acc[2] += f.file_size_in_bytes
        by_spec[f.spec_id] = by_spec.get(f.spec_id, 0) + 1
        lo = _time_bound(f.lower_bounds, time_id)
        hi = _time_bound(f.upper_bounds, time_id)
        if lo is not None:
            t_min = lo if t_min is None else min(t_min, lo)
            per_file_day.append((_day_of(lo), f.record_count, f.file_size_in_bytes))
        if hi is not None:
            t_max = hi if t_max is None else max(t_max, hi)
        spec = table.specs()[f.spec_id]
        identity = [
            pos
            for pos, pf in enumerate(spec.fields)
            if pf.source_id == service_id and str(pf.transform) == "identity"
        ]
        if identity:
            service_values.add(str(f.partition[identity[0]]))
        else:
            unpartitioned_by_service.append((hi or 0, f))
    distinct: int | None = None
    if service_id is not None and files:
        # Services of the most recent files: the layout should fit the data arriving now.
        unpartitioned_by_service.sort(key=lambda item: item[0], reverse=True)
        for _, f in unpartitioned_by_service[:service_sample_files]:
            service_values |= _file_services(table, f, service_id)
        distinct = len(service_values)
    snapshot = table.current_snapshot()
    return TableStats(
        table=".".join(table.name()),
        layout=layout_of(table),
        columns=tuple(schema.column_names),
        time_column=time_column,
        spec_id=table.spec().spec_id,
        rows=sum(f.record_count for f in files),
        files=len(files),
        bytes=sum(f.file_size_in_bytes for f in files),
        partitions=tuple(
            PartitionStats(spec_id, values, r, n, b)
            for (spec_id, values), (r, n, b) in sorted(by_partition.items())
        ),
        days=day_stats(per_file_day),
        distinct_services=distinct,
        time_min_us=t_min,
        time_max_us=t_max,
        snapshots=len(table.metadata.snapshots) if snapshot else 0,
        files_by_spec=tuple(sorted(by_spec.items())),
    )


def querylog_dir(settings: Settings, tenant: str) -> Path:
    """Where the query daemon writes the tenant's query log (JSON lines files)."""
    return settings.data_path / "querylog" / tenant


def parse_query_record(entry: dict[str, Any]) -> QueryRecord | None:
    """One line of the query daemon's log (``queryd.querylog``) as a policy input, or None."""
    sql, at = entry.get("sql"), entry.get("at")
    if not isinstance(sql, str) or not isinstance(at, int | float):
        return None
    tables = entry.get("tables")
    windows = entry.get("time_windows")
    return QueryRecord(
        sql=sql,
        elapsed_ms=float(entry.get("elapsed_ms") or 0.0),
        at=float(at),
        ok=bool(entry.get("ok", True)),
        tenant=str(entry.get("tenant", "")),
        tables=tuple(str(t) for t in tables) if isinstance(tables, list) else (),
        weight=max(1, int(entry.get("weight") or 1)),
        time_windows=tuple(
            (str(t), float(w))
            for t, w in (windows.items() if isinstance(windows, dict) else ())
            if isinstance(w, int | float) and w >= 0
        ),
    )


def read_query_log(settings: Settings, tenant: str, since: float = 0.0) -> Iterator[QueryRecord]:
    """The tenant's logged queries at or after ``since`` (epoch seconds); bad lines are skipped."""
    folder = querylog_dir(settings, tenant)
    if not folder.is_dir():
        return
    for path in sorted(folder.glob("*.jsonl")):
        if path.stat().st_mtime < since:
            continue
        with path.open("r", encoding="utf-8", errors="replace") as lines:
            for line in lines:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                record = parse_query_record(entry) if isinstance(entry, dict) else None
                if record is not None and record.at >= since:
                    yield record


def thresholds_from(settings: Settings) -> PolicyThresholds:
    lake = settings.lake
    return PolicyThresholds(
        day_split_bytes=lake.layout_day_split_bytes,
        max_services=lake.layout_max_services,
        filter_share=lake.layout_filter_share,
        min_queries=lake.layout_min_queries,
        max_trace_buckets=lake.layout_max_trace_buckets,
        min_partition_bytes=lake.layout_min_partition_bytes,
        file_open_bytes=lake.layout_file_open_bytes,
        target_file_bytes=lake.compact_target_file_bytes,
        time_window_seconds=lake.layout_time_window_seconds,
    )


def workload_of(
    settings: Settings, tenant: str, table: Table, now: float | None = None
) -> Workload:
    """How the tenant's recent queries (``layout_querylog_seconds``) use the table's columns."""
    since = (now if now is not None else time.time()) - settings.lake.layout_querylog_seconds
    records = read_query_log(settings, tenant, since)
    return summarize(records, table.name()[-1], table.schema().column_names, since)


def propose_layout(settings: Settings, tenant: str, table: Table) -> Proposal:
    """The policy's proposal for ``table`` from its statistics and the tenant's query log."""
    return propose(
        collect_stats(table), workload_of(settings, tenant, table), thresholds_from(settings)
    )


def layout_changes(table: Table) -> list[dict[str, Any]]:
    """The table's layout change log, oldest first."""
    raw = table.properties.get(LAYOUT_LOG_PROPERTY)
    if not raw:
        return []
    try:
        entries = json.loads(raw)
    except ValueError:
        return []
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def _stage_layout(tx: Transaction, current: Layout, target: Layout) -> None:
    if current.partition != target.partition:
        names = {
            (tx.table_metadata.schema().find_column_name(f.source_id), str(f.transform)): f.name
            for f in tx.table_metadata.spec().fields
        }
        with tx.update_spec() as update:
            # Removing and adding in one update: pyiceberg refuses to write with both day and
            # hour on one column ("redundant partitions").
            for f in current.partition:
                if f not in target.partition:
                    update.remove_field(names[(f.source, f.transform)])
            for f in target.partition:
                if f not in current.partition:
                    update.add_field(f.source, parse_transform(f.transform))
    if current.sort != target.sort:
        with tx.update_sort_order() as order:
            for key in target.sort:
                nulls = NullOrder.NULLS_FIRST if key.places_nulls_first else NullOrder.NULLS_LAST
                add = order.desc if key.descending else order.asc
                add(key.source, parse_transform(key.transform), nulls)
    if current.bloom != target.bloom:
        if target.bloom:
            tx.set_properties({BLOOM_FILTER_PROPERTY: ",".join(target.bloom)})
        else:
            tx.remove_properties(BLOOM_FILTER_PROPERTY)


def apply_proposal(
    table: Table, proposal: Proposal, *, source: str = "manual"
) -> list[dict[str, Any]]:
    """Evolve the table to the proposal's target layout and log why; returns the log entries.

    One commit changes the spec, the sort order and the change log. Concurrent appends only make
    it retry; files being written under the old spec stay valid (writers pin the spec, see
    :func:`pin_partition_spec`). Raises :class:`LakeError` if the table's layout changed since
    the proposal was made.
    """
    if proposal.empty:
        return []
    for attempt in range(_COMMIT_ATTEMPTS):
        table.refresh()
        current = layout_of(table)
        if current == proposal.target:
            return []
        if current != proposal.current:
            raise LakeError(
                f"the layout of {proposal.table} changed since the proposal was made "
                f"(now {current}); propose again"
            )
        tx = table.transaction()
        _stage_layout(tx, current, proposal.target)
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        metadata = tx.table_metadata
        entries = [
            {
                "at": now,
                "source": source,
                **change.to_dict(),
                "spec_id": metadata.default_spec_id,
                "sort_order_id": metadata.default_sort_order_id,
            }
            for change in proposal.changes
        ]
        history = (layout_changes(table) + entries)[-LAYOUT_LOG_MAX:]
        tx.set_properties({LAYOUT_LOG_PROPERTY: json.dumps(history)})
        try:
            tx.commit_transaction()
        except CommitFailedException:
            log.info("layout change of %s raced a commit, retrying", proposal.table)
            time.sleep(0.05 * (attempt + 1))
            continue
        for entry in entries:
            log.info(
                "layout of %s: %s -> %s (%s)",
                proposal.table,
                entry["before"],
                entry["after"],
                entry["reason"],
            )
        return entries
    raise LakeError(f"could not commit the layout change of {proposal.table}: too many conflicts")
