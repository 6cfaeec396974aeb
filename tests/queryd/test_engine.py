"""DuckDBEngine over a real SQLite Iceberg catalog: results, schema evolution, isolation, limits."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.types import StringType

from emberlake.errors import InvalidSQL, NotFound, QueryError, QueryRejected, QueryTimeout
from emberlake.settings import LakeSettings, Settings
from lake.catalog import open_catalog
from queryd.engine import DuckDBEngine
from queryd.guard import CheckedQuery, check_query
from tests.queryd.lakedata import (
    T0,
    append,
    create_tables,
    log_rows,
    metric_rows,
    span_rows,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def engine(qsettings: Settings) -> Iterator[DuckDBEngine]:
    engine = DuckDBEngine(qsettings)
    yield engine
    engine.close()


def test_group_by_over_several_files_and_typed_columns(
    catalog: Catalog, engine: DuckDBEngine
) -> None:
    tables = create_tables(catalog, "acme")
    append(tables["spans"], span_rows(30, "checkout"))
    append(tables["spans"], span_rows(20, "cart", start=30))
    result = engine.query(
        "acme",
        "SELECT service_name, count(*) AS n, sum(CASE WHEN status_code = 'ERROR' THEN 1 END) AS e "
        "FROM spans GROUP BY 1 ORDER BY 1",
    )
    assert result.table.to_pylist() == [
        {"service_name": "cart", "n": 20, "e": 2},
        {"service_name": "checkout", "n": 30, "e": 3},
    ]
    assert [c.type for c in result.columns] == ["VARCHAR", "BIGINT", "HUGEINT"]
    assert result.truncated is False
    first = engine.query(
        "acme",
        "SELECT start_time, attributes['http.route'] AS route, attributes FROM spans "
        "ORDER BY start_time LIMIT 1",
    )
    assert [c.type for c in first.columns] == [
        "TIMESTAMP WITH TIME ZONE",
        "VARCHAR",
        "MAP(VARCHAR, VARCHAR)",
    ]
    row = first.table.to_pylist()[0]
    assert row["start_time"] == T0 and row["route"] == "/r0"
    assert dict(row["attributes"]) == {"http.route": "/r0", "n": "0"}


def test_lists_and_empty_tables_keep_their_types(catalog: Catalog, engine: DuckDBEngine) -> None:
    tables = create_tables(catalog, "acme")
    append(tables["metrics"], metric_rows([1.5, 2.5], [[1, 2, 3], None]))
    result = engine.query("acme", "SELECT value, bucket_counts FROM metrics ORDER BY value")
    assert result.table.to_pylist() == [
        {"value": 1.5, "bucket_counts": [1, 2, 3]},
        {"value": 2.5, "bucket_counts": None},
    ]
    assert [c.type for c in result.columns] == ["DOUBLE", "BIGINT[]"]
    # logs has no snapshot yet: still queryable, with its columns.
    empty = engine.query("acme", "SELECT * FROM logs")
    assert empty.row_count == 0
    assert [(c.name, c.type) for c in empty.columns] == [
        ("time", "TIMESTAMP WITH TIME ZONE"),
        ("severity_text", "VARCHAR"),
        ("body", "VARCHAR"),
        ("service_name", "VARCHAR"),
    ]
    assert engine.query("acme", "SELECT count(*) AS n FROM logs").table.to_pylist() == [{"n": 0}]


def test_renamed_and_added_columns_read_by_field_id(catalog: Catalog, engine: DuckDBEngine) -> None:
    tables = create_tables(catalog, "acme")
    spans = append(tables["spans"], span_rows(3, name="old-name"))
    with spans.update_schema() as update:
        update.rename_column("name", "span_name")
        update.add_column("attr_http_route", StringType(), doc="attribute http.route")
    spans.refresh()
    newer = span_rows(2, start=3, name="new-name").rename_columns(
        [
            "start_time",
            "duration_ms",
            "trace_id",
            "span_id",
            "span_name",
            "status_code",
            "service_name",
            "attributes",
        ]
    )
    newer = newer.append_column("attr_http_route", pa.array(["/a", "/b"], pa.string()))
    append(spans, newer)
    result = engine.query(
        "acme", "SELECT span_name, attr_http_route FROM spans ORDER BY start_time"
    )
    assert result.table.to_pylist() == [
        {"span_name": "old-name", "attr_http_route": None},
        {"span_name": "old-name", "attr_http_route": None},
        {"span_name": "old-name", "attr_http_route": None},
        {"span_name": "new-name", "attr_http_route": "/a"},
        {"span_name": "new-name", "attr_http_route": "/b"},
    ]
    with pytest.raises(InvalidSQL, match="name"):
        engine.query("acme", "SELECT name FROM spans")


def test_tenants_see_only_their_own_rows_and_files(catalog: Catalog, engine: DuckDBEngine) -> None:
    a, b = create_tables(catalog, "tenant_a"), create_tables(catalog, "tenant_b")
    append(a["spans"], span_rows(5, "a-service"))
    append(b["spans"], span_rows(7, "b-service"))
    assert engine.query(
        "tenant_a", "SELECT DISTINCT service_name FROM spans"
    ).table.to_pylist() == [{"service_name": "a-service"}]
    assert engine.query("tenant_b", "SELECT count(*) AS n FROM spans").table.to_pylist() == [
        {"n": 7}
    ]
    b_file = engine.planner.scan("tenant_b", "spans").files[0]
    with pytest.raises(QueryRejected, match="another schema"):
        engine.query("tenant_a", "SELECT * FROM tenant_b.spans")
    with pytest.raises(QueryRejected, match="reads files"):
        engine.query("tenant_a", f"SELECT * FROM read_parquet('{b_file}')")
    with pytest.raises(QueryRejected, match="file path"):
        engine.query("tenant_a", f'SELECT * FROM "{b_file}"')
    # Past the guard, the locked connection still refuses the other tenant's file.
    sneaky = CheckedQuery(
        sql=f"SELECT * FROM spans UNION ALL SELECT * FROM read_parquet('{b_file}')",
        tables=("spans",),
        tree={},
    )
    with pytest.raises(QueryRejected, match="outside your tables"):
        engine.run("tenant_a", sneaky)
    for sql in ("SELECT * FROM read_csv('/etc/passwd')", "ATTACH '/tmp/x.db' AS x"):
        with pytest.raises(QueryRejected):
            engine.run("tenant_a", dataclasses.replace(sneaky, sql=sql))


def test_unknown_table_and_tenant_without_namespace(catalog: Catalog, engine: DuckDBEngine) -> None:
    create_tables(catalog, "acme")
    with pytest.raises(NotFound, match="unknown table 'traces'.*logs, metrics, spans"):
        engine.query("acme", "SELECT * FROM traces")
    with pytest.raises(NotFound, match="none yet"):
        engine.query("nobody", "SELECT * FROM spans")
    # CTE names are not tables.
    assert engine.query("acme", "WITH t AS (SELECT 1 AS x) SELECT x FROM t").row_count == 1


def test_row_limit_truncates(catalog: Catalog, engine: DuckDBEngine) -> None:
    tables = create_tables(catalog, "acme")
    append(tables["spans"], span_rows(2500))
    full = engine.query("acme", "SELECT span_id FROM spans")
    assert full.row_count == 1000 and full.truncated is True
    small = engine.query("acme", "SELECT span_id FROM spans ORDER BY span_id", max_rows=10)
    assert small.row_count == 10 and small.truncated is True
    assert small.table.column("span_id").to_pylist()[0] == f"{0:016x}"
    exact = engine.query("acme", "SELECT span_id FROM spans LIMIT 1000")
    assert exact.row_count == 1000 and exact.truncated is False


def test_timeout_cancels_a_runaway_query(catalog: Catalog, engine: DuckDBEngine) -> None:
    create_tables(catalog, "acme")
    started = time.monotonic()
    with pytest.raises(QueryTimeout, match="longer than 1s"):
        engine.query(
            "acme",
            "SELECT sum(a.range * b.range) FROM range(300000) a, range(300000) b",
            timeout=1.0,
        )
    assert time.monotonic() - started < 4.0
    # The engine is fine afterwards.
    assert engine.query("acme", "SELECT 42 AS x").table.to_pylist() == [{"x": 42}]


def test_plans_are_cached_per_snapshot(catalog: Catalog, engine: DuckDBEngine) -> None:
    tables = create_tables(catalog, "acme")
    append(tables["logs"], log_rows(["a", "b"]))
    for _ in range(3):
        assert engine.query("acme", "SELECT count(*) AS n FROM logs").table.to_pylist() == [
            {"n": 2}
        ]
    assert engine.planner.plans_computed == 1
    append(tables["logs"], log_rows(["c"], severity="ERROR"))
    result = engine.query(
        "acme", "SELECT severity_text, count(*) AS n FROM logs GROUP BY 1 ORDER BY 1"
    )
    assert result.table.to_pylist() == [
        {"severity_text": "ERROR", "n": 1},
        {"severity_text": "INFO", "n": 2},
    ]
    assert engine.planner.plans_computed == 2


def test_timestamps_come_back_in_utc(catalog: Catalog, engine: DuckDBEngine) -> None:
    tables = create_tables(catalog, "acme")
    append(tables["spans"], span_rows(1))
    result = engine.query(
        "acme",
        "SELECT start_time, date_trunc('hour', start_time) AS h FROM spans "
        "WHERE start_time >= TIMESTAMPTZ '2026-11-01 13:00:00+01'",
    )
    row = result.table.to_pylist()[0]
    assert row["start_time"].utcoffset() == dt.timedelta(0)
    assert row["h"] == T0.replace(minute=0)


def test_guard_and_engine_agree_on_checked_tables(catalog: Catalog, engine: DuckDBEngine) -> None:
    create_tables(catalog, "acme")
    checked = check_query("SELECT * FROM spans JOIN logs USING (service_name)", ["spans", "logs"])
    assert engine.run("acme", checked).snapshots == {"spans": None, "logs": None}


def test_the_lake_writers_own_tables_are_queryable_and_described(
    catalog: Catalog, engine: DuckDBEngine
) -> None:
    from lake.tables import DEAD_LETTERS, SIGNAL_TABLES, ensure_table
    from queryd.metadata import describe_table

    for name in (*SIGNAL_TABLES, DEAD_LETTERS):
        table = ensure_table(catalog, "acme", name)
        result = engine.query("acme", f"SELECT * FROM {name}")
        assert result.row_count == 0
        assert [c.name for c in result.columns] == [f.name for f in table.schema().fields]
        described = describe_table(name, table)
        assert [c["type"] for c in described["columns"]] == [c.type for c in result.columns]
        assert all(c["doc"] for c in described["columns"]), name
    assert engine.planner.table_names("acme") == sorted((*SIGNAL_TABLES, DEAD_LETTERS))


def test_object_store_warehouse_is_read_through_the_tables_file_io(
    qsettings: Settings, s3_server: Any
) -> None:
    bucket = f"lake{uuid.uuid4().hex[:8]}"
    s3_server.client().create_bucket(Bucket=bucket)
    settings = dataclasses.replace(
        qsettings,
        lake=LakeSettings(
            warehouse=f"s3://{bucket}/warehouse",
            catalog_properties=s3_server.catalog_properties(),
        ),
    )
    catalog = open_catalog(settings)
    a, b = create_tables(catalog, "tenant_a"), create_tables(catalog, "tenant_b")
    append(a["spans"], span_rows(6, "a-service"))
    append(b["spans"], span_rows(4, "b-service"))
    engine = DuckDBEngine(settings)
    try:
        result = engine.query(
            "tenant_a", "SELECT service_name, count(*) AS n FROM spans GROUP BY 1"
        )
        assert result.table.to_pylist() == [{"service_name": "a-service", "n": 6}]
        b_file = engine.planner.scan("tenant_b", "spans").files[0]
        assert b_file.startswith(f"s3://{bucket}/")
        sneaky = CheckedQuery(
            sql=f"SELECT * FROM read_parquet('{b_file}')", tables=("spans",), tree={}
        )
        with pytest.raises(QueryRejected, match="outside your tables"):
            engine.run("tenant_a", sneaky)
    finally:
        engine.close()


def test_a_vanished_file_is_retried_on_the_newer_snapshot(
    catalog: Catalog, engine: DuckDBEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    logs = append(create_tables(catalog, "acme")["logs"], log_rows(["old"]))
    stale = engine.planner.scan("acme", "logs")
    logs.overwrite(log_rows(["new", "newer"]))
    Path(stale.files[0]).unlink()  # as orphan removal would, once no snapshot needs it
    real_scan = engine.planner.scan
    calls: list[str] = []

    def scan_once_stale(tenant: str, name: str) -> Any:
        calls.append(name)
        return stale if len(calls) == 1 else real_scan(tenant, name)

    monkeypatch.setattr(engine.planner, "scan", scan_once_stale)
    result = engine.query("acme", "SELECT body FROM logs ORDER BY body")
    assert result.table.column("body").to_pylist() == ["new", "newer"]
    assert len(calls) == 2

    # Same snapshot and still missing: a plain error, not a loop.
    monkeypatch.setattr(engine.planner, "scan", lambda tenant, name: stale)
    with pytest.raises(QueryError, match="could not read the table's data files"):
        engine.query("acme", "SELECT body FROM logs")
