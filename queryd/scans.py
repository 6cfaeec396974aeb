"""The Iceberg edge of the query daemon: a tenant's tables and their current snapshots' files.

Planning a scan reads manifests, which costs milliseconds to hundreds of milliseconds on a table
with many files; a snapshot never changes, so plans are cached per (table, snapshot id).

Loading a table reads and parses its metadata JSON: 1-3 ms with tens of snapshots kept, more from
an object store, on every query. But a commit always writes a new metadata file and moves the
catalog's pointer to it, so a query reads only the pointers of the tenant's tables (one small
catalog query) and reuses the table loaded before while its pointer has not moved: it still sees
the snapshot current when it starts, and a table whose pointer moved is loaded again. Loaded
tables are kept per (tenant, table), the newest one each, and bounded in number.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from fsspec.implementations.arrow import ArrowFSWrapper
from pyiceberg.catalog import Catalog
from pyiceberg.conversions import from_bytes
from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError
from pyiceberg.io.pyarrow import PyArrowFileIO
from pyiceberg.manifest import DataFile
from pyiceberg.partitioning import PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.types import PrimitiveType, TimestampType, TimestamptzType

from emberlake.errors import LakeError, NotFound
from lake.catalog import table_locations
from queryd.caches import LruCache


def local_path(location: str) -> str:
    """A data file location as DuckDB reads it: ``file://`` stripped, other schemes kept."""
    if location.startswith("file://"):
        return location[len("file://") :]
    if location.startswith("file:"):
        return location[len("file:") :]
    return location


#: (lower, upper) bound of a column in one file; None where the manifest has none.
Bounds = tuple[int | None, int | None]


@dataclass(frozen=True)
class Plan:
    """A snapshot's data files, as cached."""

    files: tuple[str, ...]
    #: Per file: field id -> timestamp bounds (see :attr:`TableScan.file_bounds`).
    bounds: tuple[Mapping[int, Bounds], ...]
    #: Per file: its manifest entry.
    entries: tuple[DataFile, ...]
    #: The (scheme, bucket) of every object store the files live in; none for local files.
    stores: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class _Loaded:
    """A table as loaded from the metadata file its catalog entry pointed to."""

    location: str
    table: Table


@dataclass(frozen=True)
class TableScan:
    """What one query reads of one table: its schema and the current snapshot's data files."""

    name: str
    identifier: str
    snapshot_id: int | None
    schema: Schema
    files: tuple[str, ...]
    #: fsspec file systems DuckDB must be given to read remote files (s3://...), by protocol.
    filesystems: Mapping[str, Any] = field(default_factory=dict)
    #: Per file (same order as ``files``): field id -> (lower, upper) bound of its timestamps,
    #: in microseconds, from the manifests; a field without bounds is absent.
    file_bounds: tuple[Mapping[int, Bounds], ...] = ()
    #: Files in the snapshot, before any pruning.
    total_files: int = 0
    #: Per file (same order as ``files``): its manifest entry (partition values, column
    #: metrics), for pruning by partition values and column bounds.
    data_files: tuple[DataFile, ...] = ()
    #: The table's partition specs by id: each data file is partitioned by its own spec.
    specs: Mapping[int, PartitionSpec] = field(default_factory=dict)
    #: Width in seconds of the time window the query's filters select (a lower bound alone
    #: reaches to now); None when the query does not bound time on both sides.
    window_seconds: float | None = None

    def keeping(self, keep: Sequence[bool]) -> TableScan:
        """The same scan over only the files marked True."""
        return dataclasses.replace(
            self,
            files=tuple(f for f, k in zip(self.files, keep, strict=True) if k),
            file_bounds=tuple(b for b, k in zip(self.file_bounds, keep, strict=True) if k),
            data_files=tuple(d for d, k in zip(self.data_files, keep, strict=True) if k),
        )


class IcebergScanPlanner:
    """Lists a tenant's tables and plans scans of their current snapshots, with a plan cache
    (per snapshot) and a cache of loaded tables (per metadata location).

    ``table_entries`` bounds the loaded tables kept (each holds its parsed metadata, ~200 KB
    with 40 snapshots kept); 0 loads the table from the catalog for every query.
    """

    def __init__(
        self, catalog: Catalog, cache_entries: int = 512, table_entries: int = 256
    ) -> None:
        self.catalog = catalog
        self._plans: LruCache[tuple[str, int], Plan] = LruCache(cache_entries)
        self._tables: LruCache[tuple[str, str], _Loaded] = LruCache(table_entries)
        self._lock = threading.Lock()
        self.plans_computed = 0
        #: Tables loaded from the catalog (metadata files read and parsed).
        self.tables_loaded = 0
        self._remote: dict[tuple[str, str], Any] = {}

    def table_names(self, tenant: str) -> list[str]:
        """Bare names of the tenant's tables (its namespace's tables), sorted."""
        locations = table_locations(self.catalog, tenant)
        if locations is not None:
            return sorted(locations)
        try:
            identifiers = self.catalog.list_tables(tenant)
        except NoSuchNamespaceError:
            return []
        return sorted(ident[-1] for ident in identifiers)

    def load(self, tenant: str, name: str) -> Table:
        """The tenant's table ``name`` at its current metadata; :class:`NotFound` if absent.

        The table is shared with other callers: read it, never refresh or commit through it.
        """
        key = (tenant, name)
        if self._tables.entries:
            location = (table_locations(self.catalog, tenant) or {}).get(name)
            kept = self._tables.get(key)
            if kept is not None and location is not None and kept.location == location:
                return kept.table
        try:
            table = self.catalog.load_table((tenant, name))
        except (NoSuchTableError, NoSuchNamespaceError):
            raise NotFound(f"unknown table {name!r} for tenant {tenant!r}") from None
        with self._lock:
            self.tables_loaded += 1
        kept = self._tables.get(key)
        # Queries racing a commit: keep the newest table loaded, whichever finished last.
        if kept is None or not _newer(kept.table, table):
            self._tables.put(key, _Loaded(table.metadata_location, table))
        return table

    def scan(self, tenant: str, name: str) -> TableScan:
        """The files of the table's current snapshot, mapped to local paths."""
        table = self.load(tenant, name)
        snapshot = table.current_snapshot()
        identifier = f"{tenant}.{name}"
        plan = Plan((), (), ())
        if snapshot is not None:
            plan = self._files(identifier, snapshot.snapshot_id, table)
        return TableScan(
            name=name,
            identifier=identifier,
            snapshot_id=None if snapshot is None else snapshot.snapshot_id,
            schema=table.schema(),
            files=plan.files,
            filesystems=self._filesystems(table, plan.stores),
            file_bounds=plan.bounds,
            total_files=len(plan.files),
            data_files=plan.entries,
            specs=table.specs(),
        )

    def _filesystems(self, table: Table, stores: tuple[tuple[str, str], ...]) -> dict[str, Any]:
        """The object stores the files live in, as fsspec file systems DuckDB can read through.

        DuckDB 2.0 has no httpfs extension we can install, so remote files are read through the
        table's own pyarrow file system (configured from the catalog's ``s3.*`` properties).
        """
        out: dict[str, Any] = {}
        for scheme, netloc in stores:
            if scheme in out:
                continue
            if not isinstance(table.io, PyArrowFileIO):
                raise LakeError(
                    f"cannot read {scheme}:// files with {type(table.io).__name__}; "
                    "use pyiceberg's PyArrowFileIO (the default) for the catalog"
                )
            key = (scheme, netloc)
            with self._lock:
                wrapped = self._remote.get(key)
                if wrapped is None:
                    wrapped = ArrowFSWrapper(table.io.fs_by_scheme(scheme, netloc))
                    self._remote[key] = wrapped
            out[scheme] = wrapped
        return out

    def _files(self, identifier: str, snapshot_id: int, table: Table) -> Plan:
        key = (identifier, snapshot_id)
        cached = self._plans.get(key)
        if cached is not None:
            return cached
        tasks = table.scan(snapshot_id=snapshot_id).plan_files()
        if any(task.delete_files for task in tasks):
            # Row-level deletes would be silently ignored by a plain Parquet read.
            raise LakeError(
                f"{identifier} has row-level delete files, which queryd cannot apply yet"
            )
        timestamps = {
            f.field_id: f.field_type
            for f in table.schema().fields
            if isinstance(f.field_type, TimestampType | TimestamptzType)
        }
        files = tuple(local_path(task.file.file_path) for task in tasks)
        plan = Plan(
            files,
            tuple(_bounds(task.file, timestamps) for task in tasks),
            tuple(task.file for task in tasks),
            _stores(files),
        )
        with self._lock:
            self.plans_computed += 1
        self._plans.put(key, plan)
        return plan


def _newer(a: Table, b: Table) -> bool:
    """Whether ``a``'s metadata was written after ``b``'s."""
    return a.metadata.last_updated_ms > b.metadata.last_updated_ms


def _stores(files: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """The distinct (scheme, bucket) pairs of the remote files among ``files``."""
    stores: dict[tuple[str, str], None] = {}
    for location in files:
        parsed = urlparse(location)
        if parsed.scheme not in ("", "file"):
            stores[(parsed.scheme, parsed.netloc)] = None
    return tuple(stores)


def _bounds(data_file: DataFile, fields: Mapping[int, PrimitiveType]) -> dict[int, Bounds]:
    """Lower and upper bounds of the given timestamp fields in one data file."""
    lower, upper = data_file.lower_bounds or {}, data_file.upper_bounds or {}
    out: dict[int, Bounds] = {}
    for field_id, kind in fields.items():
        low, high = lower.get(field_id), upper.get(field_id)
        if low is not None or high is not None:
            out[field_id] = (
                None if low is None else int(from_bytes(kind, low)),
                None if high is None else int(from_bytes(kind, high)),
            )
    return out
