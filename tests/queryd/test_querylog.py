"""The query log: columns a query filters and groups on, and JSON-lines files per tenant."""

from __future__ import annotations

import json
from pathlib import Path

from queryd.guard import check_query
from queryd.querylog import JsonLinesQueryLog, QueryRecord, query_columns


def columns(sql: str) -> tuple[list[str], list[str]]:
    return query_columns(check_query(sql).tree)


def test_filters_and_group_by_with_positions_and_aliases() -> None:
    assert columns(
        "SELECT service_name AS svc, count(*) FROM spans WHERE start_time > now() - INTERVAL 1 HOUR"
        " AND status_code = 'ERROR' GROUP BY svc"
    ) == (["start_time", "status_code"], ["service_name"])
    assert columns("SELECT name, kind, count(*) FROM spans GROUP BY 1, 2") == (
        [],
        ["name", "kind"],
    )


def test_map_lookups_are_recorded_with_their_key() -> None:
    filters, groups = columns(
        "SELECT attributes['http.route'], count(*) FROM spans s"
        " WHERE s.resource_attributes['deployment.environment'] = 'prod'"
        " AND element_at(attributes, 'peer') IS NOT NULL GROUP BY 1"
    )
    assert filters == ["resource_attributes['deployment.environment']", "attributes['peer']"]
    assert groups == ["attributes['http.route']"]


def test_subqueries_and_ctes_contribute_their_own_filters() -> None:
    filters, _ = columns(
        "WITH slow AS (SELECT * FROM spans WHERE duration_ms > 500)"
        " SELECT * FROM slow WHERE trace_id IN"
        " (SELECT trace_id FROM logs WHERE severity_text = 'ERROR')"
    )
    assert set(filters) == {"duration_ms", "trace_id", "severity_text"}


def test_records_append_per_tenant_and_day_and_read_back(tmp_path: Path) -> None:
    log = JsonLinesQueryLog(tmp_path / "querylog")
    first = QueryRecord(
        tenant="acme",
        sql="SELECT 1",
        ok=True,
        elapsed_ms=1.5,
        rows=1,
        tables=["spans"],
        filter_columns=["start_time"],
        at=1_795_000_000.0,
    )
    log.record(first)
    log.record(
        QueryRecord(tenant="acme", sql="SELEC", ok=False, elapsed_ms=0.1, error="invalid_sql")
    )
    log.record(QueryRecord(tenant="other", sql="SELECT 2", ok=True, elapsed_ms=1.0))
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.jsonl"))
    assert files[0] == "querylog/acme/2026-11-18.jsonl"
    assert any(f.startswith("querylog/other/") for f in files)
    line = json.loads((tmp_path / files[0]).read_text().splitlines()[0])
    assert line["timestamp"] == "2026-11-18T11:06:40.000+00:00"
    assert line["at"] == 1_795_000_000.0 and line["filter_columns"] == ["start_time"]
    entries = list(log.entries("acme"))
    assert entries[0] == first
    assert [e.error for e in entries] == [None, "invalid_sql"]
    assert [e.sql for e in log.entries("other")] == ["SELECT 2"]
