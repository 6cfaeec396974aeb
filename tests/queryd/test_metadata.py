"""Table descriptions: columns with provenance docs, counts, snapshot, layout, column stats."""

from __future__ import annotations

import json

import pytest
from pyiceberg.catalog import Catalog

from lake.layout import LAYOUT_LOG_PROPERTY
from queryd.metadata import COLUMN_STATS_PROPERTY, column_stats, describe_table, describe_tables
from queryd.scans import IcebergScanPlanner
from tests.queryd.lakedata import append, create_tables, span_rows


@pytest.mark.integration
def test_describe_spans(catalog: Catalog) -> None:
    tables = create_tables(catalog, "acme")
    append(tables["spans"], span_rows(10))
    spans = append(tables["spans"], span_rows(5, start=10))
    with spans.transaction() as tx:
        tx.set_properties(
            {COLUMN_STATS_PROPERTY: json.dumps({"columns": {"service_name": {"distinct": 1}}})}
        )
    spans.refresh()
    described = describe_table("spans", spans)
    columns = {c["name"]: c for c in described["columns"]}
    assert columns["service_name"]["doc"] == "resource attribute service.name"
    assert columns["service_name"]["stats"] == {"distinct": 1}
    assert "stats" not in columns["name"]
    assert columns["attributes"]["type"] == "MAP(VARCHAR, VARCHAR)"
    assert columns["attributes"]["iceberg_type"] == "map<string, string>"
    assert columns["start_time"]["type"] == "TIMESTAMP WITH TIME ZONE"
    assert described["row_count"] == 15
    assert described["file_count"] == 2
    assert described["size_bytes"] > 0
    assert described["snapshot_id"] == spans.current_snapshot().snapshot_id
    assert described["snapshot_time"].endswith("+00:00")
    assert described["identifier"] == "acme.spans"
    assert described["partition_spec"] == [
        {"name": "start_day", "transform": "day", "source": "start_time"}
    ]
    assert described["sort_order"] == [
        {
            "column": "service_name",
            "transform": "identity",
            "direction": "asc",
            "null_order": "nulls-first",
        }
    ]
    assert described["layout_changes"] == []


@pytest.mark.integration
def test_layout_changes_are_served_with_their_reasons(catalog: Catalog) -> None:
    spans = create_tables(catalog, "acme")["spans"]
    change = {"kind": "partition", "change": "day -> hour", "reason": "days hold 40M rows"}
    with spans.transaction() as tx:
        tx.set_properties({LAYOUT_LOG_PROPERTY: json.dumps([change])})
    spans.refresh()
    assert describe_table("spans", spans)["layout_changes"] == [change]


@pytest.mark.integration
def test_describe_all_tables_of_a_tenant_including_empty_ones(catalog: Catalog) -> None:
    create_tables(catalog, "acme")
    described = describe_tables(IcebergScanPlanner(catalog), "acme")
    assert [t["name"] for t in described] == ["logs", "metrics", "spans"]
    assert described[0]["row_count"] == 0 and described[0]["snapshot_id"] is None
    assert describe_tables(IcebergScanPlanner(catalog), "nobody") == []


def test_column_stats_accepts_two_shapes_and_ignores_garbage() -> None:
    assert column_stats({}) == {}
    assert column_stats({COLUMN_STATS_PROPERTY: '{"a": {"nulls": 0}}'}) == {"a": {"nulls": 0}}
    assert column_stats({COLUMN_STATS_PROPERTY: '{"columns": {"b": {"max": 3}}}'}) == {
        "b": {"max": 3}
    }
    assert column_stats({COLUMN_STATS_PROPERTY: "not json"}) == {}
    assert column_stats({COLUMN_STATS_PROPERTY: "[1, 2]"}) == {}
