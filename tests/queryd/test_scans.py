"""Query freshness and tenant isolation with queryd's caches of loaded tables and checked SQL,
over a real SQLite catalog and real files; and the caches' bounds."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.types import StringType

from emberlake.errors import NotFound
from emberlake.settings import Settings
from queryd.engine import CACHED_SQL_CHARS, DuckDBEngine
from tests.queryd.lakedata import append, create_tables, log_rows, span_rows

pytestmark = pytest.mark.integration

COUNT = "SELECT count(*) AS n FROM logs"


def caches(settings: Settings, tables: int, statements: int) -> Settings:
    queryd = dataclasses.replace(
        settings.queryd, table_cache_entries=tables, statement_cache_entries=statements
    )
    return dataclasses.replace(settings, queryd=queryd)


@pytest.fixture
def engine(qsettings: Settings) -> Iterator[DuckDBEngine]:
    engine = DuckDBEngine(qsettings)
    yield engine
    engine.close()


def count(engine: DuckDBEngine, tenant: str, sql: str = COUNT) -> Any:
    return engine.query(tenant, sql).table.to_pylist()[0]["n"]


def test_a_commit_is_seen_by_the_next_query(catalog: Catalog, engine: DuckDBEngine) -> None:
    logs = append(create_tables(catalog, "acme")["logs"], log_rows(["a", "b"]))
    assert count(engine, "acme") == 2
    loaded = engine.planner.tables_loaded
    for _ in range(3):
        assert count(engine, "acme") == 2
    assert engine.planner.tables_loaded == loaded, "unchanged metadata is not loaded again"
    # Committed through another catalog object, as the lake writer's process would.
    append(logs, log_rows(["c"]))
    result = engine.query("acme", COUNT)
    assert result.table.to_pylist() == [{"n": 3}]
    assert result.snapshots["logs"] == logs.current_snapshot().snapshot_id
    assert engine.planner.tables_loaded == loaded + 1


def test_a_schema_change_without_a_new_snapshot_is_seen(
    catalog: Catalog, engine: DuckDBEngine
) -> None:
    logs = append(create_tables(catalog, "acme")["logs"], log_rows(["a"]))
    snapshot = logs.current_snapshot().snapshot_id
    assert [c.name for c in engine.query("acme", "SELECT * FROM logs").columns][-1] == (
        "service_name"
    )
    with logs.update_schema() as update:
        update.add_column("attr_http_route", StringType())
    result = engine.query("acme", "SELECT * FROM logs")
    assert result.snapshots["logs"] == snapshot
    assert [c.name for c in result.columns][-1] == "attr_http_route"


def test_a_dropped_table_is_not_served_from_the_cache(
    catalog: Catalog, engine: DuckDBEngine
) -> None:
    append(create_tables(catalog, "acme")["logs"], log_rows(["a"]))
    assert count(engine, "acme") == 1
    catalog.drop_table(("acme", "logs"))
    with pytest.raises(NotFound, match="logs"):
        engine.query("acme", COUNT)
    with pytest.raises(NotFound, match="logs"):
        engine.planner.load("acme", "logs")


def test_tenants_never_share_cached_tables_or_statements(
    catalog: Catalog, engine: DuckDBEngine
) -> None:
    a, b = create_tables(catalog, "tenant_a"), create_tables(catalog, "tenant_b")
    append(a["logs"], log_rows(["a"] * 2))
    append(b["logs"], log_rows(["b"] * 5))
    for _ in range(2):
        assert count(engine, "tenant_a") == 2
        assert count(engine, "tenant_b") == 5
    loaded = engine.planner.tables_loaded
    assert (count(engine, "tenant_a"), count(engine, "tenant_b")) == (2, 5)
    assert engine.planner.tables_loaded == loaded, "each tenant's table is kept apart"
    table_a, table_b = (
        engine.planner.load("tenant_a", "logs"),
        engine.planner.load("tenant_b", "logs"),
    )
    assert table_a is not table_b
    assert "/tenant_a/" in table_a.metadata_location
    assert "/tenant_b/" in table_b.metadata_location
    assert all("/tenant_a/" in f for f in engine.planner.scan("tenant_a", "logs").files)
    # The same SQL text is checked and kept once per tenant.
    assert len(engine.statements) == 2
    # A tenant without the table gets no other tenant's, cached or not.
    with pytest.raises(NotFound, match="logs"):
        engine.query("tenant_c", COUNT)
    with pytest.raises(NotFound, match="logs"):
        engine.planner.scan("tenant_c", "logs")


def test_literal_time_bounds_are_kept_per_table_and_clock_bounds_never(
    catalog: Catalog, engine: DuckDBEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    for tenant in ("tenant_a", "tenant_b"):
        append(create_tables(catalog, tenant)["spans"], span_rows(3))
    evaluated: list[Any] = []
    real = engine.constants.micros

    def counting(expr: Any, with_zone: bool) -> int | None:
        evaluated.append(expr)
        return real(expr, with_zone)

    monkeypatch.setattr(engine.constants, "micros", counting)
    literal = (
        "SELECT count(*) AS n FROM spans WHERE start_time >= TIMESTAMPTZ '2026-11-01 12:00:01Z'"
    )
    for _ in range(3):
        assert count(engine, "tenant_a", literal) == 2
    assert len(evaluated) == 1
    assert count(engine, "tenant_b", literal) == 2
    assert len(evaluated) == 2
    clock = "SELECT count(*) AS n FROM spans WHERE start_time <= now()"
    for _ in range(2):
        assert count(engine, "tenant_a", clock) == 3
    assert len(evaluated) == 4


def test_caches_are_bounded(catalog: Catalog, qsettings: Settings) -> None:
    for tenant in ("t1", "t2", "t3"):
        append(create_tables(catalog, tenant)["logs"], log_rows(["x"]))
    engine = DuckDBEngine(caches(qsettings, tables=2, statements=2))
    try:
        for tenant in ("t1", "t2", "t3"):
            assert count(engine, tenant) == 1
        assert len(engine.planner._tables) == 2
        assert len(engine.statements) == 2
        loaded = engine.planner.tables_loaded
        assert count(engine, "t3") == 1  # kept
        assert engine.planner.tables_loaded == loaded
        assert count(engine, "t1") == 1  # the least recently used, dropped
        assert engine.planner.tables_loaded == loaded + 1
        long_sql = COUNT + " WHERE body <> '" + "x" * CACHED_SQL_CHARS + "'"
        before = len(engine.statements), engine.statements.get(("t1", COUNT))
        assert count(engine, "t1", long_sql) == 1
        assert engine.statements.get(("t1", long_sql)) is None
        assert (len(engine.statements), engine.statements.get(("t1", COUNT))) == before
    finally:
        engine.close()


def test_caches_off_load_and_check_every_query(catalog: Catalog, qsettings: Settings) -> None:
    append(create_tables(catalog, "acme")["logs"], log_rows(["a"]))
    engine = DuckDBEngine(caches(qsettings, tables=0, statements=0))
    try:
        loaded = engine.planner.tables_loaded
        for _ in range(3):
            assert count(engine, "acme") == 1
        assert engine.planner.tables_loaded == loaded + 3
        assert len(engine.statements) == 0
        assert engine.planner.plans_computed == 1, "plans are still cached per snapshot"
    finally:
        engine.close()
