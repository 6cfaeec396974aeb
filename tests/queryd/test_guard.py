"""The SQL guard: one read-only SELECT over the tenant's own tables, with helpful refusals."""

from __future__ import annotations

import pytest

from emberlake.errors import InvalidSQL, NotFound, QueryRejected
from queryd.guard import check_query

TABLES = ["logs", "spans", "metrics"]

ALLOWED = [
    ("SELECT * FROM spans", ("spans",)),
    ("select count(*) from spans;", ("spans",)),
    ("FROM logs SELECT body", ("logs",)),
    (
        "WITH e AS (SELECT * FROM spans WHERE status_code = 'ERROR') SELECT count(*) FROM e",
        ("spans",),
    ),
    (
        "SELECT s.name FROM spans s JOIN logs l ON l.trace_id = s.trace_id "
        "WHERE s.service_name IN (SELECT service_name FROM metrics)",
        ("spans", "logs", "metrics"),
    ),
    ("SELECT attributes['http.route'], count(*) FROM spans GROUP BY ALL", ("spans",)),
    ("SELECT 1 UNION ALL SELECT 2", ()),
    ("VALUES (1, 'a')", ()),
    ("SELECT * FROM range(10)", ()),
    ("SELECT unnest([1, 2, 3])", ()),
    ("SELECT * FROM generate_series(1, 3)", ()),
    ("DESCRIBE spans", ("spans",)),
    ("SUMMARIZE logs", ("logs",)),
    ("SELECT name, row_number() OVER (PARTITION BY trace_id) FROM spans", ("spans",)),
    ("SELECT 'a.parquet' AS not_a_path, '/etc/passwd' LIKE '%pass%'", ()),
    ("SELECT * FROM SPANS", ("spans",)),
    ("-- a comment\nSELECT 1 /* another */", ()),
]


@pytest.mark.parametrize(("sql", "tables"), ALLOWED)
def test_allowed(sql: str, tables: tuple[str, ...]) -> None:
    checked = check_query(sql, TABLES)
    assert checked.tables == tables
    assert not checked.sql.endswith(";")


REFUSED = [
    ("SELECT 1; SELECT 2", "2 statements"),
    ("SELECT * FROM spans; DROP TABLE spans", "2 statements"),
    ("SELECT * FROM read_csv('/etc/passwd')", "read_csv\\(\\) reads files"),
    ("SELECT * FROM read_csv_auto('x.csv')", "reads files"),
    ("SELECT * FROM read_json('x.json')", "reads files"),
    ("SELECT * FROM read_json_auto('x.json')", "reads files"),
    ("SELECT * FROM read_parquet('/lake/other/spans/data/x.parquet')", "reads files"),
    ("SELECT * FROM parquet_scan('x.parquet')", "reads files"),
    ("SELECT * FROM read_text('/etc/hostname')", "reads files"),
    ("SELECT * FROM read_blob('/etc/hostname')", "reads files"),
    ("SELECT * FROM glob('/etc/*')", "reads files"),
    ("SELECT * FROM iceberg_scan('s3://bucket/t')", "reads files"),
    ("SELECT * FROM delta_scan('x')", "reads files"),
    ("SELECT * FROM sqlite_scan('x.db', 't')", "reads files"),
    ("SELECT * FROM postgres_scan('dsn', 'public', 't')", "reads files"),
    ("SELECT * FROM spans WHERE trace_id IN (SELECT * FROM read_csv('ids.csv'))", "reads files"),
    ("SELECT * FROM query('SELECT 1')", "runs SQL from a string"),
    ("SELECT * FROM query_table('spans')", "runs SQL from a string"),
    ("SELECT * FROM 'file.parquet'", "looks like a file path"),
    ("SELECT * FROM '/etc/passwd'", "looks like a file path"),
    ('SELECT * FROM "data/*.csv"', "looks like a file path"),
    ("SELECT * FROM 's3://bucket/key.parquet'", "looks like a file path"),
    ("ATTACH 'other.db' AS o", "ATTACH statements"),
    ("DETACH o", "DETACH statements"),
    ("INSTALL httpfs", "INSTALL/LOAD"),
    ("LOAD httpfs", "INSTALL/LOAD"),
    ("COPY (SELECT * FROM spans) TO 'out.csv'", "COPY statements"),
    ("COPY spans FROM 'in.csv'", "COPY statements"),
    ("PRAGMA database_list", "PRAGMA statements"),
    ("SET threads = 64", "SET/USE/RESET"),
    ("RESET threads", "SET/USE/RESET"),
    ("USE other", "SET/USE/RESET"),
    ("EXPORT DATABASE 'dump'", "EXPORT statements"),
    ("IMPORT DATABASE 'dump'", "statements are not allowed"),
    ("CALL duckdb_settings()", "CALL statements"),
    ("EXPLAIN SELECT * FROM spans", "EXPLAIN statements"),
    ("EXPLAIN ANALYZE SELECT * FROM spans", "EXPLAIN statements"),
    ("CREATE TABLE t AS SELECT * FROM spans", "CREATE statements"),
    ("CREATE MACRO m(x) AS x", "CREATE statements"),
    ("INSERT INTO spans SELECT * FROM spans", "INSERT statements"),
    ("DELETE FROM spans", "DELETE statements"),
    ("UPDATE spans SET name = 'x'", "UPDATE statements"),
    ("DROP VIEW spans", "DROP statements"),
    ("SELECT * FROM other_tenant.spans", "another schema or catalog"),
    ('SELECT * FROM "x"."y"', "another schema or catalog"),
    ("SELECT * FROM memory.main.spans", "another schema or catalog"),
    ("SELECT * FROM information_schema.tables", "another schema or catalog"),
    ("SELECT * FROM spans JOIN acme.logs USING (trace_id)", "another schema or catalog"),
    ("SELECT * FROM duckdb_settings()", "engine internals"),
    ("SELECT * FROM duckdb_views()", "engine internals"),
    ("SELECT (SELECT count(*) FROM duckdb_tables())", "engine internals"),
    ("SELECT * FROM pragma_database_list()", "engine internals"),
    ("SELECT * FROM duckdb_secrets", "engine catalog"),
    ("SELECT * FROM sqlite_master", "engine catalog"),
    ("SELECT current_setting('allowed_paths')", "engine configuration"),
    ("SELECT * FROM spans AT (VERSION => 3)", "time travel"),
    ("SELECT main.lower('x')", "qualified function"),
    ("SHOW TABLES", "GET /v1/tables"),
    ("SHOW DATABASES", "GET /v1/tables"),
    ("SELECT * FROM sql_auto_complete('SEL')", "not allowed"),
    ("", "empty query"),
    ("  ;  ", "0 statements"),
]


@pytest.mark.parametrize(("sql", "message"), REFUSED)
def test_refused_with_a_reason(sql: str, message: str) -> None:
    with pytest.raises(QueryRejected, match=message):
        check_query(sql, TABLES)


def test_syntax_errors_are_invalid_sql() -> None:
    with pytest.raises(InvalidSQL, match="syntax error"):
        check_query("SELEC 1", TABLES)
    with pytest.raises(InvalidSQL):
        check_query("SELECT * FROM spans WHERE", TABLES)


def test_unknown_tables_name_the_known_ones() -> None:
    with pytest.raises(NotFound, match="unknown table 'traces'; your tables: logs, metrics, spans"):
        check_query("SELECT * FROM traces", TABLES)
    with pytest.raises(NotFound, match="none yet"):
        check_query("SELECT * FROM spans", [])


def test_without_known_tables_any_bare_name_passes() -> None:
    assert check_query("SELECT * FROM anything").tables == ("anything",)


def test_tree_is_kept_for_the_query_log() -> None:
    checked = check_query("SELECT name FROM spans WHERE service_name = 'a'", TABLES)
    assert checked.tree["statements"][0]["node"]["type"] == "SELECT_NODE"
