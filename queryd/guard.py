"""Which SQL the query daemon accepts: one read-only SELECT over the caller's own tables.

The guard is the friendly first line of defence: it parses the statement with DuckDB's own parser
(no database, no files) and walks the syntax tree, refusing anything that could reach past the
tenant's tables with a message saying what to do instead. The hard line is the locked-down DuckDB
connection in :mod:`queryd.engine`, which refuses file and network access even if something slips
through here.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import duckdb

from emberlake.errors import InvalidSQL, NotFound, QueryRejected

#: Table functions that only generate values; every other table function is refused.
ALLOWED_TABLE_FUNCTIONS = frozenset({"range", "generate_series", "unnest"})

#: Table functions refused with a "reads files or external data" message.
FILE_TABLE_FUNCTIONS = frozenset(
    {
        "glob",
        "parquet_scan",
        "parquet_metadata",
        "parquet_schema",
        "parquet_file_metadata",
        "parquet_kv_metadata",
        "iceberg_scan",
        "iceberg_metadata",
        "iceberg_snapshots",
        "delta_scan",
        "sqlite_scan",
        "postgres_scan",
        "mysql_scan",
    }
)

#: Table functions that run SQL given as a string, which would skip this guard.
SQL_TABLE_FUNCTIONS = frozenset({"query", "query_table"})

#: Scalar functions that reveal engine configuration (and with it the tenant's file paths).
REFUSED_SCALAR_FUNCTIONS = frozenset({"current_setting", "getenv"})

#: Catalog views DuckDB resolves without a schema; they show view definitions and file paths.
SYSTEM_TABLES = frozenset(
    {
        "sqlite_master",
        "sqlite_schema",
        "sqlite_temp_master",
        "sqlite_temp_schema",
        "information_schema",
    }
)

_PATH_LIKE = re.compile(r"[./\\:*?]")
_HINT = "send one SELECT over your tables (logs, spans, metrics, ...)"

#: How statement types read in messages (DuckDB files INSTALL under LOAD, USE under SET).
_STATEMENT_NAMES = {
    "LOAD": "INSTALL/LOAD",
    "SET": "SET/USE/RESET",
    "MULTI": "multi-part (PIVOT ...)",
}

_parser_lock = threading.Lock()
_parser = duckdb.connect(":memory:")


@dataclass(frozen=True)
class CheckedQuery:
    """A statement the guard accepted, with what the engine and the query log need from it."""

    sql: str
    #: Tables the statement reads (lower case), CTE names excluded.
    tables: tuple[str, ...]
    #: DuckDB's serialized syntax tree of the statement (``json_serialize_sql``).
    tree: Mapping[str, Any] = field(repr=False)


def check_query(sql: str, known_tables: Collection[str] | None = None) -> CheckedQuery:
    """Return the checked statement, or raise :class:`QueryRejected` saying why it is refused.

    With ``known_tables``, a table name outside that set (and not a CTE) raises
    :class:`NotFound` listing the tables there are.
    """
    statement = _single_select(sql)
    tree = _serialize(statement)
    ctes = {name.lower() for name in _cte_names(tree)}
    tables: list[str] = []
    for node in _dicts(tree):
        _check_node(node)
        if node.get("type") == "BASE_TABLE":
            name = str(node["table_name"]).lower()
            if name not in ctes and name not in tables:
                tables.append(name)
    checked = CheckedQuery(sql=statement, tables=tuple(tables), tree=tree)
    if known_tables is not None:
        require_tables(checked, known_tables)
    return checked


def require_tables(checked: CheckedQuery, known_tables: Collection[str]) -> None:
    """Raise :class:`NotFound` listing the tables there are if the statement reads another."""
    known = {t.lower() for t in known_tables}
    for name in checked.tables:
        if name not in known:
            listing = ", ".join(sorted(known)) or "none yet"
            raise NotFound(f"unknown table {name!r}; your tables: {listing}")


def _single_select(sql: str) -> str:
    if not sql or not sql.strip():
        raise QueryRejected(f"empty query: {_HINT}")
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise InvalidSQL(_first_line(exc)) from None
    if len(statements) != 1:
        raise QueryRejected(f"{len(statements)} statements given: {_HINT}, exactly one")
    statement = statements[0]
    if statement.type != duckdb.StatementType.SELECT:
        kind = _STATEMENT_NAMES.get(statement.type.name, statement.type.name)
        raise QueryRejected(f"{kind} statements are not allowed: {_HINT}")
    return str(statement.query).strip().rstrip(";").strip()


def _serialize(statement: str) -> Mapping[str, Any]:
    with _parser_lock:
        row = _parser.execute("SELECT json_serialize_sql(?)", [statement]).fetchone()
    parsed: dict[str, Any] = json.loads(row[0]) if row else {"error": True}
    if parsed.get("error"):
        message = parsed.get("error_message") or "could not parse the query"
        raise InvalidSQL(str(message))
    return parsed


def _cte_names(tree: Mapping[str, Any]) -> Iterator[str]:
    for node in _dicts(tree):
        cte_map = node.get("cte_map")
        if isinstance(cte_map, Mapping):
            for entry in cte_map.get("map") or []:
                yield str(entry["key"])


def _check_node(node: Mapping[str, Any]) -> None:
    kind = node.get("type")
    if kind == "TABLE_FUNCTION":
        _check_table_function(node["function"])
    elif kind == "BASE_TABLE":
        _check_table(node)
    elif kind == "SHOW_REF" and node.get("show_type") not in {"DESCRIBE", "SUMMARY"}:
        raise QueryRejected("SHOW is not allowed: list your tables with GET /v1/tables")
    elif "function_name" in node:
        _check_function(node)


def _check_table_function(function: Mapping[str, Any]) -> None:
    name = str(function["function_name"]).lower()
    if function.get("schema") or function.get("catalog"):
        raise QueryRejected(f"qualified table function {name!r} is not allowed: {_HINT}")
    if name in ALLOWED_TABLE_FUNCTIONS:
        return
    if name in SQL_TABLE_FUNCTIONS:
        raise QueryRejected(f"{name}() runs SQL from a string and is not allowed: {_HINT}")
    if name in FILE_TABLE_FUNCTIONS or name.startswith("read_") or name.endswith("_scan"):
        raise QueryRejected(
            f"table function {name}() reads files or external data and is not allowed: {_HINT}"
        )
    if name.startswith(("duckdb_", "pragma_", "pg_")):
        raise QueryRejected(f"{name}() exposes engine internals and is not allowed: {_HINT}")
    allowed = ", ".join(sorted(ALLOWED_TABLE_FUNCTIONS))
    raise QueryRejected(f"table function {name}() is not allowed (allowed: {allowed}): {_HINT}")


def _check_table(node: Mapping[str, Any]) -> None:
    name = str(node["table_name"])
    schema, catalog = node.get("schema_name"), node.get("catalog_name")
    if schema or catalog:
        qualified = ".".join(p for p in (catalog, schema, name) if p)
        raise QueryRejected(
            f"{qualified!r} names another schema or catalog; only your own tables are visible:"
            f" write the bare name (FROM spans)"
        )
    if _PATH_LIKE.search(name):
        raise QueryRejected(
            f"{name!r} looks like a file path; reading files is not allowed: {_HINT}"
        )
    lowered = name.lower()
    if lowered in SYSTEM_TABLES or lowered.startswith(("duckdb_", "pg_")):
        raise QueryRejected(f"{name!r} is an engine catalog and is not allowed: {_HINT}")
    if node.get("at_clause"):
        raise QueryRejected(f"time travel (AT ...) on {name!r} is not supported yet")


def _check_function(node: Mapping[str, Any]) -> None:
    name = str(node["function_name"]).lower()
    if node.get("schema") or node.get("catalog"):
        raise QueryRejected(f"qualified function {name!r} is not allowed: call it unqualified")
    if name in REFUSED_SCALAR_FUNCTIONS or name.startswith(("duckdb_", "pragma_")):
        raise QueryRejected(f"{name}() exposes engine configuration and is not allowed")


def _dicts(value: Any) -> Iterator[Mapping[str, Any]]:
    """Every mapping in a JSON tree, depth first in document order."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            yield item
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
