"""The Iceberg catalog edge: one place that opens the configured SQL catalog.

The catalog is a pyiceberg :class:`~pyiceberg.catalog.sql.SqlCatalog` (SQLite under the data
folder by default, any SQLAlchemy URI otherwise) over a warehouse folder or object store. Every
component that reads or writes the lake opens it through :func:`open_catalog`;
:func:`table_locations` reads where a namespace's tables' current metadata is, without loading it.
"""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlparse

from pyiceberg.catalog import Catalog
from pyiceberg.catalog.sql import ICEBERG_TABLE_TYPE, IcebergTables, SqlCatalog
from sqlalchemy import bindparam, event, select
from sqlalchemy.exc import DatabaseError

from emberlake.settings import Settings, parse_pairs

#: Seconds a SQLite catalog waits for another process's write lock before failing.
SQLITE_BUSY_TIMEOUT = 30


def _sqlite_uri(uri: str) -> str:
    # Several processes (writers, compaction, the query daemon) share one SQLite file: wait for
    # each other's locks instead of failing at once with "database is locked".
    if "timeout=" in uri:
        return uri
    return f"{uri}{'&' if '?' in uri else '?'}timeout={SQLITE_BUSY_TIMEOUT}"


def open_catalog(settings: Settings) -> SqlCatalog:
    """The lake's catalog, creating the data folder and local warehouse folder when missing."""
    settings.data_path.mkdir(parents=True, exist_ok=True)
    warehouse = settings.warehouse
    parsed = urlparse(warehouse)
    if parsed.scheme in ("", "file"):
        Path(parsed.path if parsed.scheme else warehouse).mkdir(parents=True, exist_ok=True)
    uri = settings.catalog_uri
    sqlite = uri.startswith("sqlite")
    properties = {
        "uri": _sqlite_uri(uri) if sqlite else uri,
        "warehouse": warehouse,
        **parse_pairs(settings.lake.catalog_properties),
    }
    catalog = _sql_catalog(settings.lake.catalog_name, properties)
    if sqlite:
        _use_wal(catalog)
    return catalog


def _sql_catalog(name: str, properties: dict[str, str], attempts: int = 3) -> SqlCatalog:
    """The SQL catalog; a first start of several processes at once is not an error.

    Opening the catalog creates its tables when they are missing, checking first: two processes
    opening a fresh database together (writers of one group, say) both pass the check, and the
    slower one's CREATE TABLE fails. Opening again then finds the tables.
    """
    for attempt in range(attempts):
        try:
            return SqlCatalog(name, **properties)
        except DatabaseError:
            if attempt + 1 == attempts:
                raise
            time.sleep(0.1 * (attempt + 1))
    raise AssertionError("unreachable")


def _use_wal(catalog: SqlCatalog) -> None:
    """Readers then never block the writers' commits (WAL is a property of the database file)."""

    def on_connect(connection: object, _record: object) -> None:
        cursor = connection.cursor()  # type: ignore[attr-defined]
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    event.listen(catalog.engine, "connect", on_connect)
    catalog.engine.dispose()


def table_locations(catalog: Catalog, namespace: str) -> dict[str, str] | None:
    """Table name -> current metadata location of every table in ``namespace``, in one read of
    the catalog (empty for an unknown namespace); None for a catalog that cannot say this cheaply.

    A commit always writes a new metadata file and points the catalog at it, so an unchanged
    location means unchanged table metadata: a reader can keep what it loaded from it. This is
    the query that ``load_table`` and ``list_tables`` start with, without parsing the metadata
    JSON or checking the namespace first (~0.1 ms against ~0.8 ms and ~1.7 ms on SQLite).
    """
    # pyiceberg's own filter that leaves views out of the table listing (catalog schema v1).
    type_filter = getattr(catalog, "_iceberg_type_filter", None)
    if not isinstance(catalog, SqlCatalog) or type_filter is None:
        return None
    statement = _LOCATIONS if type_filter() is None else _TABLE_LOCATIONS
    with catalog.engine.connect() as connection:
        rows = connection.execute(statement, {"catalog": catalog.name, "namespace": namespace})
        return {str(name): str(location) for name, location in rows if location}


#: Built once: building the statement costs more than running it.
_LOCATIONS = select(IcebergTables.table_name, IcebergTables.metadata_location).where(
    IcebergTables.catalog_name == bindparam("catalog"),
    IcebergTables.table_namespace == bindparam("namespace"),
)
_TABLE_LOCATIONS = _LOCATIONS.where(
    (IcebergTables.iceberg_type == ICEBERG_TABLE_TYPE) | IcebergTables.iceberg_type.is_(None)
)
