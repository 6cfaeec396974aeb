"""Descriptions of a tenant's tables for ``GET /v1/tables``: columns with provenance, size, layout.

A column's ``doc`` is its Iceberg field doc, which the lake writer sets to the column's source
("attribute http.route", "resource attribute service.name", "OTLP span name"). Per-column
statistics come from the table property ``emberlake.column_stats`` when schema inference has
written it; unknown or malformed content is left out rather than failing the listing.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping
from typing import Any

from pyiceberg.table import Table

from lake.layout import layout_changes
from queryd.scans import IcebergScanPlanner
from queryd.typemap import display_type

log = logging.getLogger(__name__)

COLUMN_STATS_PROPERTY = "emberlake.column_stats"


def column_stats(properties: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Per-column statistics from the table property, as {column: {stat: value}}.

    Accepts ``{"columns": {name: {...}}}`` or a bare ``{name: {...}}``.
    """
    raw = properties.get(COLUMN_STATS_PROPERTY)
    if not raw:
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError:
        log.warning("ignoring malformed %s property", COLUMN_STATS_PROPERTY)
        return {}
    if isinstance(parsed, Mapping) and isinstance(parsed.get("columns"), Mapping):
        parsed = parsed["columns"]
    if not isinstance(parsed, Mapping):
        return {}
    return {str(k): dict(v) for k, v in parsed.items() if isinstance(v, Mapping)}


def describe_table(name: str, table: Table) -> dict[str, Any]:
    """One table: columns (name, types, doc, stats), rows, snapshot, files, partitioning, order
    and the layout change log."""
    schema = table.schema()
    stats = column_stats(table.properties)
    columns = []
    for f in schema.fields:
        column: dict[str, Any] = {
            "name": f.name,
            "type": display_type(f.field_type),
            "iceberg_type": str(f.field_type),
            "doc": f.doc,
            "field_id": f.field_id,
            "required": f.required,
        }
        if f.name in stats:
            column["stats"] = stats[f.name]
        columns.append(column)
    snapshot = table.current_snapshot()
    summary = snapshot.summary if snapshot is not None and snapshot.summary is not None else None
    return {
        "name": name,
        "identifier": ".".join(table.name()),
        "columns": columns,
        "row_count": _int(summary, "total-records"),
        "file_count": _int(summary, "total-data-files"),
        "size_bytes": _int(summary, "total-files-size"),
        "snapshot_id": None if snapshot is None else snapshot.snapshot_id,
        "snapshot_time": None if snapshot is None else _iso(snapshot.timestamp_ms),
        "partition_spec": [
            {
                "name": p.name,
                "transform": str(p.transform),
                "source": schema.find_column_name(p.source_id),
            }
            for p in table.spec().fields
        ],
        "sort_order": [
            {
                "column": schema.find_column_name(s.source_id),
                "transform": str(s.transform),
                "direction": s.direction.value,
                "null_order": s.null_order.value,
            }
            for s in table.sort_order().fields
        ],
        # Why the layout is what it is: partition and sort changes with their reasons.
        "layout_changes": layout_changes(table),
    }


def describe_tables(planner: IcebergScanPlanner, tenant: str) -> list[dict[str, Any]]:
    """Every table of the tenant, described."""
    return [
        describe_table(name, planner.load(tenant, name)) for name in planner.table_names(tenant)
    ]


def _int(summary: Any, key: str) -> int:
    if summary is None:
        return 0
    value = summary.get(key)
    return int(value) if value is not None else 0


def _iso(timestamp_ms: int) -> str:
    when = dt.datetime.fromtimestamp(timestamp_ms / 1000.0, dt.UTC)
    return when.isoformat(timespec="milliseconds")
