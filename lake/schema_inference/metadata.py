"""Column metadata for people and agents writing SQL (table property ``emberlake.column_stats``).

For every promoted column: its source (scope and key, and the doc text), its type, the kinds of
the key's values with counts, the null fraction and approximate distinct count of the column while
it was active, up to five examples, when the key was first and last seen and when the column was
written, how many of the key's values are only in the attributes map, and for keys spread over
several columns (see the sibling rule in :mod:`lake.schema_inference.policy`) which column
superseded which plus one SQL expression reading all of them. Unbounded key families are listed
with their approximate number of distinct keys: their values are only in the map.

Timestamps are microseconds since the epoch (UTC), as the batches that carried them.
"""

from __future__ import annotations

import json
from typing import Any

from lake.schema_inference.naming import doc_for
from lake.schema_inference.state import ColumnState, InferenceState
from lake.schema_inference.types import ColumnType

#: Table property holding :func:`column_stats_json`.
COLUMN_STATS_PROPERTY = "emberlake.column_stats"
#: Table property holding the inference state (:meth:`InferenceState.to_json`).
STATE_PROPERTY = "emberlake.schema_inference"

_SQL_TYPE = {
    ColumnType.BOOLEAN: "BOOLEAN",
    ColumnType.LONG: "BIGINT",
    ColumnType.DOUBLE: "DOUBLE",
    ColumnType.STRING: "VARCHAR",
}


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def all_values_sql(columns: list[ColumnState]) -> str:
    """One SQL expression reading a key's typed values across its columns, newest first."""
    newest = columns[-1]
    parts = [_quote(newest.name)]
    for column in reversed(columns[:-1]):
        parts.append(f"CAST({_quote(column.name)} AS {_SQL_TYPE[newest.type]})")
    return f"COALESCE({', '.join(parts)})"


def column_metadata(state: InferenceState) -> dict[str, Any]:
    """Metadata of every promoted column and unbounded family, JSON-ready."""
    by_key: dict[tuple[str, str], list[ColumnState]] = {}
    for column in state.columns.values():
        by_key.setdefault((column.scope, column.key), []).append(column)
    columns: dict[str, Any] = {}
    for column in state.columns.values():
        key_stats = state.keys.get((column.scope, column.key))
        stats = column.stats
        entry: dict[str, Any] = {
            "source": doc_for(column.scope, column.key),
            "scope": column.scope.value,
            "key": column.key,
            "type": column.type.value,
            "observed_types": key_stats.kind_names() if key_stats else {},
            "null_fraction": round(stats.null_fraction, 4),
            "distinct": stats.distinct,
            "examples": stats.examples,
            "first_seen_us": key_stats.first_seen_us if key_stats else None,
            "last_seen_us": key_stats.last_seen_us if key_stats else None,
            "written_from_us": stats.first_written_us,
            "written_until_us": stats.last_written_us,
            "values_only_in_map": stats.unconverted,
        }
        if column.superseded_by is not None:
            entry["superseded_by"] = column.superseded_by
        siblings = by_key[(column.scope, column.key)]
        if len(siblings) > 1:
            entry["all_values_sql"] = all_values_sql(siblings)
        columns[column.name] = entry
    families = [
        {
            "scope": scope.value,
            "family": template,
            "kind": "grown" if fam.grown else "id-like",
            "approx_keys": fam.distinct_keys(),
            "values": fam.values,
            "examples": fam.examples,
            "first_seen_us": fam.first_seen_us,
            "last_seen_us": fam.last_seen_us,
        }
        for (scope, template), fam in sorted(state.families.items())
    ]
    return {
        "v": 1,
        "rows_observed": state.rows,
        "columns": columns,
        "unbounded_key_families": families,
    }


def column_stats_json(state: InferenceState) -> str:
    """:func:`column_metadata` as compact JSON, for the ``emberlake.column_stats`` property."""
    return json.dumps(column_metadata(state), separators=(",", ":"), ensure_ascii=False)
