"""DuckDB over a tenant's Iceberg tables: one locked-down in-memory connection per query.

For each table the query names, the engine plans the current snapshot's data files and creates a
view reading them with ``read_parquet(files, schema=MAP{field_id: ...})``, so columns are matched
by Iceberg field id: files written before a column was renamed or added read correctly (matching
by name would not). Then the connection is locked: file access only to exactly those files, no
extensions, no configuration changes. A timeout, or the client going away, interrupts the
connection from another thread (:class:`queryd.cancellation.Cancellation`).

Files whose timestamp bounds (from the manifests) lie outside the query's time window are left
out of the view, and so are files that cannot hold the value a string column is compared with
(``service_name = 'x'``, ``trace_id IN (...)``): their partition values (identity, bucket) or
column bounds rule it out, as Iceberg's own evaluators decide (:mod:`queryd.pruning`). DuckDB's
Parquet statistics skip row groups within the files that remain.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa
from pyiceberg.expressions import And, BooleanExpression, In
from pyiceberg.expressions.visitors import (
    _InclusiveMetricsEvaluator,
    expression_evaluator,
    inclusive_projection,
)
from pyiceberg.schema import Schema
from pyiceberg.typedef import Record
from pyiceberg.types import StringType, TimestampType, TimestamptzType

from emberlake.errors import (
    InvalidSQL,
    NotFound,
    QueryCancelled,
    QueryError,
    QueryRejected,
    QueryTimeout,
)
from emberlake.settings import Settings
from lake.catalog import open_catalog
from queryd.caches import LruCache
from queryd.cancellation import Cancellation
from queryd.databases import ConstantEvaluator, SpareDatabases
from queryd.guard import CheckedQuery, check_query, require_tables
from queryd.pruning import Equality, Window, equality_filters, reads_clock, window_bounds
from queryd.scans import IcebergScanPlanner, TableScan
from queryd.typemap import duckdb_type, quote_identifier, quote_literal

log = logging.getLogger(__name__)

#: The reason a query's own timer gives when it cancels the query.
_TIMED_OUT = "timed out"
#: Rows per Arrow batch pulled from DuckDB; the row limit is checked between batches.
BATCH_ROWS = 8192
#: Longest SQL text whose checked statement is kept for repeats (bounds the cache's memory).
CACHED_SQL_CHARS = 8192

_INVALID = (
    duckdb.ParserException,
    duckdb.BinderException,
    duckdb.ConversionException,
    duckdb.InvalidInputException,
    duckdb.TypeMismatchException,
    duckdb.OutOfRangeException,
    duckdb.SyntaxException,
    duckdb.CatalogException,
    duckdb.NotImplementedException,
)


@dataclass(frozen=True)
class Column:
    """A result column: its name and DuckDB type name."""

    name: str
    type: str


@dataclass(frozen=True)
class QueryResult:
    """Rows of one query (at most the row limit) and how they were produced."""

    columns: tuple[Column, ...]
    table: pa.Table
    truncated: bool
    elapsed_ms: float
    #: Table name -> snapshot id read (None for a table with no snapshot yet).
    snapshots: dict[str, int | None] = field(default_factory=dict)
    #: Table name -> (files read, files in the snapshot): what time-window pruning left.
    files: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: Table name -> width in seconds of the time window the query selected, where bounded.
    time_windows: dict[str, float] = field(default_factory=dict)

    @property
    def row_count(self) -> int:
        return self.table.num_rows


def view_sql(scan: TableScan) -> str:
    """``CREATE VIEW`` reading the scan's files by field id (or an empty, typed view)."""
    fields = scan.schema.fields
    name = quote_identifier(scan.name)
    if not scan.files:
        columns = ", ".join(
            f"CAST(NULL AS {duckdb_type(f.field_type)}) AS {quote_identifier(f.name)}"
            for f in fields
        )
        return f"CREATE VIEW {name} AS SELECT {columns} WHERE false"
    entries = ", ".join(
        f"{f.field_id}: {{name: {quote_literal(f.name)},"
        f" type: {quote_literal(duckdb_type(f.field_type))}, default_value: NULL}}"
        for f in fields
    )
    files = ", ".join(quote_literal(path) for path in scan.files)
    # hive_partitioning off: Iceberg's partition folders (day=...) must not become columns.
    return (
        f"CREATE VIEW {name} AS SELECT * FROM read_parquet([{files}],"
        f" schema=MAP{{{entries}}}, hive_partitioning=false)"
    )


class DuckDBEngine:
    """Runs checked SQL for one tenant over its Iceberg tables."""

    def __init__(
        self, settings: Settings, planner: IcebergScanPlanner | None = None, spares: int = 2
    ) -> None:
        self.settings = settings
        self.planner = planner or IcebergScanPlanner(
            open_catalog(settings), table_entries=settings.queryd.table_cache_entries
        )
        self.temp_dir = settings.data_path / "tmp" / "queryd"
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        cfg = settings.queryd
        self.databases = SpareDatabases(
            {
                "threads": cfg.threads,
                "memory_limit": cfg.memory_limit,
                "temp_directory": str(self.temp_dir),
                "autoinstall_known_extensions": False,
                "autoload_known_extensions": False,
            },
            spares,
        )
        self.constants = ConstantEvaluator()
        # Agents repeat queries: a repeat skips parsing and evaluating its literal time bounds.
        # Keys hold the tenant (and table), so no tenant is answered from another's entries.
        self.statements: LruCache[tuple[str, str], CheckedQuery] = LruCache(
            cfg.statement_cache_entries
        )
        self.bounds: LruCache[tuple[str, str, bool], int] = LruCache(cfg.statement_cache_entries)

    def close(self) -> None:
        """Close the spare databases (queries in flight finish on their own)."""
        self.databases.close()
        self.constants.close()

    def prune(self, scan: TableScan, checked: CheckedQuery, timeout: float) -> TableScan:
        """The scan without the files the query's time window or string equality filters rule
        out (see queryd.pruning)."""
        return prune_by_equality(self.prune_by_time(scan, checked, timeout), checked)

    def prune_by_time(self, scan: TableScan, checked: CheckedQuery, timeout: float) -> TableScan:
        """The scan without the files outside the query's time window."""
        stamps = {
            f.name: f
            for f in scan.schema.fields
            if isinstance(f.field_type, TimestampType | TimestamptzType)
        }
        if not stamps or not scan.files:
            return scan
        names = [f.name for f in scan.schema.fields]
        windows: dict[int, Window] = {}
        for bound in window_bounds(checked.tree, scan.name, stamps, names):
            column = stamps[bound.column]
            value = self._micros(
                scan.identifier, bound.expr, isinstance(column.field_type, TimestamptzType)
            )
            if value is None:
                continue
            if bound.strict:  # timestamps are whole microseconds: x < v is x <= v - 1
                value += 1 if bound.side == "low" else -1
            if bound.side == "high" and reads_clock(bound.expr):
                # The query reads the clock a little later than we did: widen by its lifetime.
                value += int((timeout + 60.0) * 1_000_000)
            window = windows.get(column.field_id, Window())
            windows[column.field_id] = window.narrowed(bound.side, value)
        if not windows:
            return scan
        widths = [w.width_seconds(_newest(scan, fid)) for fid, w in windows.items()]
        known = [w for w in widths if w is not None]
        scan = dataclasses.replace(scan, window_seconds=min(known) if known else None)
        keep = [
            all(w.overlaps(*bounds.get(fid, (None, None))) for fid, w in windows.items())
            for bounds in scan.file_bounds
        ]
        return scan.keeping(keep)

    def _micros(self, identifier: str, expr: Mapping[str, Any], with_zone: bool) -> int | None:
        """A bound's constant in microseconds; kept for repeats unless it reads the clock."""
        if reads_clock(expr):
            return self.constants.micros(expr, with_zone)
        key = (identifier, json.dumps(expr), with_zone)
        value = self.bounds.get(key)
        if value is None:
            value = self.constants.micros(expr, with_zone)
            if value is not None:  # None may be a timeout under load: try again next time
                self.bounds.put(key, value)
        return value

    def check(self, tenant: str, sql: str) -> CheckedQuery:
        """Guard the SQL against the tenant's table names (raises QueryRejected/NotFound)."""
        known = self.planner.table_names(tenant)
        key = (tenant, sql)
        checked = self.statements.get(key)
        if checked is None:
            checked = check_query(sql)
            if len(sql) <= CACHED_SQL_CHARS:
                self.statements.put(key, checked)
        require_tables(checked, known)
        return checked

    def query(
        self, tenant: str, sql: str, max_rows: int | None = None, timeout: float | None = None
    ) -> QueryResult:
        """Check and run ``sql`` for ``tenant``."""
        return self.run(tenant, self.check(tenant, sql), max_rows, timeout)

    def run(
        self,
        tenant: str,
        checked: CheckedQuery,
        max_rows: int | None = None,
        timeout: float | None = None,
        cancellation: Cancellation | None = None,
    ) -> QueryResult:
        """Run an already checked query; at most ``max_rows`` rows, cancelled after ``timeout``
        or when ``cancellation`` is cancelled (its client went away)."""
        cfg = self.settings.queryd
        cancellation = cancellation or Cancellation()
        limit = cfg.max_rows if max_rows is None else min(max_rows, cfg.max_rows)
        seconds = cfg.timeout_seconds if timeout is None else timeout
        started = time.perf_counter()
        scans = [
            self.prune(self.planner.scan(tenant, name), checked, seconds) for name in checked.tables
        ]
        try:
            columns, table, truncated = self._execute(
                scans, checked.sql, limit, seconds, cancellation
            )
        except duckdb.IOException as exc:
            # A file of the planned snapshot may have been removed once a newer snapshot
            # replaced it (compaction, then expiry and orphan removal): plan again, once.
            fresh = [
                self.prune(self.planner.scan(tenant, name), checked, seconds)
                for name in checked.tables
            ]
            if [s.snapshot_id for s in fresh] == [s.snapshot_id for s in scans]:
                raise _translate(exc) from None
            log.info("data files changed under a query; retrying on the newer snapshots")
            scans = fresh
            remaining = max(0.1, seconds - (time.perf_counter() - started))
            try:
                columns, table, truncated = self._execute(
                    scans, checked.sql, limit, remaining, cancellation
                )
            except duckdb.IOException as again:
                raise _translate(again) from None
        return QueryResult(
            columns=columns,
            table=table,
            truncated=truncated,
            elapsed_ms=(time.perf_counter() - started) * 1000.0,
            snapshots={s.name: s.snapshot_id for s in scans},
            files={s.name: (len(s.files), s.total_files) for s in scans},
            time_windows={s.name: s.window_seconds for s in scans if s.window_seconds is not None},
        )

    def _execute(
        self,
        scans: list[TableScan],
        sql: str,
        limit: int,
        seconds: float,
        cancellation: Cancellation,
    ) -> tuple[tuple[Column, ...], pa.Table, bool]:
        """One attempt: DuckDB errors become emberlake errors, except I/O errors (retried)."""
        con = self._connect(scans)
        timer = threading.Timer(seconds, cancellation.cancel, [_TIMED_OUT])
        timer.daemon = True
        timer.start()
        try:
            if not cancellation.attach(con):
                raise duckdb.InterruptException("cancelled before it started")
            return _fetch(con, sql, limit)
        except duckdb.InterruptException:
            if cancellation.reason == _TIMED_OUT:
                raise QueryTimeout(
                    f"query ran longer than {seconds:g}s and was cancelled;"
                    " narrow the time range, filter more, or aggregate"
                ) from None
            raise QueryCancelled(f"query cancelled: {cancellation.reason}") from None
        except duckdb.IOException:
            raise
        except duckdb.Error as exc:
            raise _translate(exc) from None
        finally:
            timer.cancel()
            cancellation.detach()
            self.databases.discard(con)

    def _connect(self, scans: list[TableScan]) -> duckdb.DuckDBPyConnection:
        con = self.databases.open()
        try:
            files: list[str] = []
            registered: set[str] = set()
            for scan in scans:
                for protocol, filesystem in scan.filesystems.items():
                    if protocol not in registered:
                        con.register_filesystem(filesystem)
                        registered.add(protocol)
                con.execute(view_sql(scan))
                files.extend(scan.files)
            allowed = ", ".join(quote_literal(path) for path in files)
            con.execute(f"SET allowed_paths = [{allowed}]")
            # Timestamps come back in UTC whatever the host's zone.
            con.execute("SET TimeZone = 'UTC'")
            con.execute("SET enable_external_access = false")
            con.execute("SET lock_configuration = true")
        except BaseException:
            con.close()
            raise
        return con


def _newest(scan: TableScan, field_id: int) -> int | None:
    """The largest value of a timestamp field in the scan's files, from the manifests."""
    uppers = [b[field_id][1] for b in scan.file_bounds if field_id in b]
    known = [u for u in uppers if u is not None]
    return max(known) if known else None


def equality_expression(filters: list[Equality]) -> BooleanExpression | None:
    """The filters as one Iceberg expression (None without filters)."""
    # pyiceberg's predicates are pydantic models whose __init__ mypy does not see.
    terms: list[BooleanExpression] = [
        In(f.column, f.values)  # type: ignore[call-arg, arg-type]
        for f in filters
    ]
    if not terms:
        return None
    return terms[0] if len(terms) == 1 else And(*terms)


def file_filter(expr: BooleanExpression, schema: Schema, scan: TableScan) -> list[bool]:
    """Per data file of the scan: may it hold rows matching ``expr``? Partition values are
    judged by the projection of ``expr`` onto the file's own spec (identity and bucket fields
    rule files out), then the file's column bounds and null counts."""
    metrics = _InclusiveMetricsEvaluator(schema, expr, case_sensitive=True).eval
    by_spec: dict[int, Callable[[Record], bool]] = {}
    keep = []
    for data_file in scan.data_files:
        partition_matches = by_spec.get(data_file.spec_id)
        if partition_matches is None:
            spec = scan.specs[data_file.spec_id]
            projected = inclusive_projection(schema, spec, case_sensitive=True)(expr)
            partition_matches = by_spec[data_file.spec_id] = expression_evaluator(
                Schema(*spec.partition_type(schema).fields), projected, case_sensitive=True
            )
        keep.append(partition_matches(data_file.partition) and metrics(data_file))
    return keep


def prune_by_equality(scan: TableScan, checked: CheckedQuery) -> TableScan:
    """The scan without the files its string equality filters rule out."""
    if not scan.files or len(scan.data_files) != len(scan.files):
        return scan
    strings = [f.name for f in scan.schema.fields if isinstance(f.field_type, StringType)]
    expr = equality_expression(equality_filters(checked.tree, scan.name, strings))
    if expr is None:
        return scan
    return scan.keeping(file_filter(expr, scan.schema, scan))


def _fetch(
    con: duckdb.DuckDBPyConnection, sql: str, limit: int
) -> tuple[tuple[Column, ...], pa.Table, bool]:
    relation = con.sql(sql)
    columns = tuple(
        Column(n, str(t)) for n, t in zip(relation.columns, relation.types, strict=True)
    )
    reader = relation.to_arrow_reader(min(BATCH_ROWS, limit + 1))
    batches: list[pa.RecordBatch] = []
    rows = 0
    try:
        for batch in reader:
            batches.append(batch)
            rows += batch.num_rows
            if rows > limit:
                break
    finally:
        reader.close()
    table = pa.Table.from_batches(batches, schema=reader.schema)
    truncated = table.num_rows > limit
    return columns, table.slice(0, limit) if truncated else table, truncated


def _translate(exc: duckdb.Error) -> Exception:
    message = str(exc).strip()
    if isinstance(exc, duckdb.CatalogException) and "Table with name" in message:
        return NotFound(message.splitlines()[0])
    if isinstance(exc, duckdb.PermissionException):
        return QueryRejected(f"the query reached outside your tables: {message.splitlines()[0]}")
    if isinstance(exc, _INVALID):
        return InvalidSQL(message)
    if isinstance(exc, duckdb.IOException):
        return QueryError(
            f"could not read the table's data files ({message.splitlines()[0]}); retry, and if"
            " it persists check the warehouse"
        )
    if isinstance(exc, duckdb.OutOfMemoryException):
        return QueryError(f"query needed more memory than the limit allows: {message}")
    log.warning("query failed: %s", message)
    return QueryError(message)
