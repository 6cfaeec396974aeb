"""IcebergWriter: append rows and Kafka offsets to one table in one Iceberg commit.

A commit writes the rows as Parquet data files, then adds them, sets the table's offset
properties (see :mod:`lake.offsets`) and requires, checked by the catalog against the table's
current metadata at the moment of the commit, that those properties still hold the values this
writer last saw. So:

* two writers on *different* partitions of one table never lose each other's rows or offsets
  (pyiceberg retries the optimistic commit; each writer sets only its own keys);
* a writer that lost its partition to another one (a rebalance it slept through) cannot commit
  over the new owner: its commit fails with :class:`~emberlake.errors.CommitConflict`;
* a commit whose outcome is unknown (the process saw an error after the catalog may have
  applied it) is resolved by reading the offsets back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import pyarrow as pa
from pydantic import Field
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.table import Table, Transaction
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.update import AssertDefaultSpecId, ValidatableTableRequirement

from emberlake.errors import CommitConflict, LakeError
from lake.datafiles import conform, write_data_files
from lake.maintenance import SnapshotExpiry
from lake.offsets import parse_offset
from lake.tables import ensure_table, field_doc, iceberg_type, table_name

log = logging.getLogger(__name__)

#: Attempts at one table commit before giving up on the batch (each after a refresh).
COMMIT_ATTEMPTS = 8


class AssertOffsets(ValidatableTableRequirement):
    """Requires the table's offset properties to hold the values the writer expects."""

    type: Literal["assert-emberlake-offsets"] = Field(default="assert-emberlake-offsets")
    expected: dict[str, str | None]

    def validate(self, base_metadata: TableMetadata | None) -> None:  # type: ignore[override]
        if base_metadata is None:
            raise CommitFailedException("Requirement failed: current table metadata is missing")
        moved = {
            key: base_metadata.properties.get(key)
            for key, value in self.expected.items()
            if base_metadata.properties.get(key) != value
        }
        if moved:
            # Not a CommitFailedException: retrying cannot help, another writer owns these now.
            raise CommitConflict(f"offsets moved under this writer: {moved}")


@dataclass
class TableAppend:
    """Rows for one table and the offsets they advance, with the offsets the writer expects."""

    namespace: str
    table: str
    rows: pa.Table
    #: offset property -> next offset once these rows are committed
    offsets: dict[str, int]
    #: offset property -> the value the writer believes is stored now (None: absent)
    expected: dict[str, int | None]
    #: Other table properties to set in the same commit (e.g. schema inference state).
    properties: dict[str, str] = field(default_factory=dict)
    summary: dict[str, str] = field(default_factory=dict)
    #: Table properties to remove in the same commit (offsets of retired broker clusters).
    removals: frozenset[str] = frozenset()

    @property
    def name(self) -> str:
        return table_name(self.namespace, self.table)


class IcebergWriter:
    """Appends to the lake's tables, creating them on first sight, with offsets in the commit."""

    def __init__(self, catalog: Catalog, expiry: SnapshotExpiry | None = None):
        self.catalog = catalog
        self.expiry = expiry
        self._tables: dict[str, Table] = {}
        #: Seconds the last append spent writing data files, and committing them.
        self.last_write_seconds = 0.0
        self.last_commit_seconds = 0.0

    def table(self, namespace: str, table: str, refresh: bool = False) -> Table:
        """The (cached) table, created with the lake's schema and layout when missing."""
        name = table_name(namespace, table)
        cached = self._tables.get(name)
        if cached is None:
            cached = self._tables[name] = ensure_table(self.catalog, namespace, table)
        elif refresh:
            cached.refresh()
        return cached

    def stored_offsets(
        self, namespace: str, table: str, keys: list[str], refresh: bool = True
    ) -> dict[str, int | None]:
        """The offsets the table holds now for the given properties."""
        properties = self.table(namespace, table, refresh=refresh).properties
        return {key: parse_offset(properties.get(key)) for key in keys}

    def append(self, job: TableAppend) -> None:
        """Commit the rows and offsets, or raise :class:`CommitConflict` if another writer
        moved the expected offsets (the rows are then not committed)."""
        for attempt in range(COMMIT_ATTEMPTS):
            table = self.table(job.namespace, job.table, refresh=attempt > 0)
            try:
                done = self._already_done(table, job)
            except CommitConflict:
                if attempt > 0:
                    raise
                # The cached table may be stale (another writer committed): judge afresh.
                table = self.table(job.namespace, job.table, refresh=True)
                done = self._already_done(table, job)
            if done:
                return
            written: list[str] = []
            try:
                self._commit(table, job, written)
            except CommitConflict:
                self._delete(table, written)
                table.refresh()  # so that the next batch starts from what the catalog holds
                raise
            except CommitFailedException as exc:
                log.info("commit to %s lost a race (%s); retrying", job.name, exc)
                self._delete(table, written)
                continue
            except Exception as exc:
                # Unknown outcome: the catalog may have applied the commit. Read back to know.
                try:
                    table = self.table(job.namespace, job.table, refresh=True)
                except Exception as again:  # e.g. the warehouse is unreadable too
                    raise LakeError(
                        f"commit to {job.name} failed ({exc}) and the table cannot be read"
                        f" back ({again}); the batch will be read again"
                    ) from exc
                if self._already_done(table, job):
                    return
                raise LakeError(f"commit to {job.name} failed: {exc}") from exc
            if self.expiry is not None:
                self.expiry.after_commit(table)
            return
        raise LakeError(f"commit to {job.name} kept losing races ({COMMIT_ATTEMPTS} attempts)")

    def _already_done(self, table: Table, job: TableAppend) -> bool:
        """True if the table already holds this commit; raise if another writer moved on."""
        stored = {key: parse_offset(table.properties.get(key)) for key in job.offsets}
        if all(stored[k] == job.expected.get(k) for k in job.offsets):
            return False
        if all(stored[k] == v for k, v in job.offsets.items()):
            return True
        raise CommitConflict(
            f"{job.name}: stored offsets {stored} are neither the expected "
            f"{job.expected} nor this batch's {job.offsets}"
        )

    def _commit(self, table: Table, job: TableAppend, written: list[str]) -> None:
        started = time.perf_counter()
        with table.transaction() as tx:
            evolve_schema(tx, job.rows.schema)
            # Each ``tx.table_metadata`` re-applies the staged updates to a deep copy: read once.
            metadata = tx.table_metadata
            rows = conform(job.rows, metadata.schema())
            files = write_data_files(metadata, table.io, rows)
            written.extend(f.file_path for f in files)
            wrote = time.perf_counter()
            # Fail rather than let pyiceberg's retry relabel files written under an older spec.
            spec = AssertDefaultSpecId(default_spec_id=metadata.default_spec_id)  # type: ignore[call-arg]
            tx._stage((), (spec,))
            tx._stage((), (_offsets_requirement(job.expected, job.offsets),))  # type: ignore[arg-type]
            with tx.update_snapshot(snapshot_properties=job.summary).fast_append() as append:
                for data_file in files:
                    append.append_data_file(data_file)
            tx.set_properties(
                {**job.properties, **{key: str(value) for key, value in job.offsets.items()}}
            )
            if removals := [key for key in job.removals if key in metadata.properties]:
                tx.remove_properties(*removals)
        self.last_write_seconds = wrote - started
        self.last_commit_seconds = time.perf_counter() - wrote

    @staticmethod
    def _delete(table: Table, paths: list[str]) -> None:
        for path in paths:
            try:
                table.io.delete(path)
            except Exception as exc:  # an orphan file is harmless; orphan cleanup takes it
                log.debug("could not delete uncommitted file %s: %s", path, exc)


def _offsets_requirement(
    expected: Mapping[str, int | None], offsets: Mapping[str, int]
) -> AssertOffsets:
    return AssertOffsets(
        expected={key: None if expected.get(key) is None else str(expected[key]) for key in offsets}
    )


def evolve_schema(tx: Transaction, schema: pa.Schema) -> None:
    """Add columns the rows carry but the table lacks (docs from the Arrow field metadata)
    and widen int->long / float->double where the rows need it."""
    current = tx.table_metadata.schema()
    names = {f.name: f for f in current.fields}
    missing: list[pa.Field] = [f for f in schema if f.name not in names]
    widen: list[tuple[str, Any]] = []
    for f in schema:
        existing = names.get(f.name)
        if existing is None:
            continue
        wanted = iceberg_type(f.type)
        if wanted != existing.field_type and _widens(existing.field_type, wanted):
            widen.append((f.name, wanted))
    if not missing and not widen:
        return
    with tx.update_schema() as update:
        for f in missing:
            update.add_column(f.name, iceberg_type(f.type), doc=field_doc(f))
        for name, kind in widen:
            update.update_column(name, field_type=kind)


def _widens(old: Any, new: Any) -> bool:
    pairs = {("int", "long"), ("float", "double")}
    return (str(old), str(new)) in pairs
