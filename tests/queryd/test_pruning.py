"""Time-window file pruning: which predicates bound a column; pruning never changes rows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from pyiceberg.catalog import Catalog

from emberlake.settings import Settings
from queryd.engine import DuckDBEngine
from queryd.guard import check_query
from queryd.pruning import Window, reads_clock, window_bounds
from tests.queryd.lakedata import T0, append, create_tables, span_rows

STAMPS = ["start_time"]


def sides(sql: str, table: str = "spans") -> list[tuple[str, str]]:
    return [(b.column, b.side) for b in window_bounds(check_query(sql).tree, table, STAMPS)]


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT * FROM spans WHERE start_time >= '2026-01-01'", [("start_time", "low")]),
        ("SELECT * FROM spans WHERE start_time < now()", [("start_time", "high")]),
        ("SELECT * FROM spans WHERE '2026-01-01' < start_time", [("start_time", "low")]),
        (
            "SELECT * FROM spans s WHERE s.start_time BETWEEN '2026-01-01' AND '2026-01-02'"
            " AND status_code = 'ERROR'",
            [("start_time", "low"), ("start_time", "high")],
        ),
        (
            "SELECT * FROM spans WHERE start_time = TIMESTAMPTZ '2026-01-01 00:00:00+00'",
            [("start_time", "low"), ("start_time", "high")],
        ),
        (
            "SELECT count(*) FROM spans"
            " WHERE spans.start_time > current_timestamp - INTERVAL 1 HOUR",
            [("start_time", "low")],
        ),
        (
            "SELECT * FROM logs l JOIN (SELECT * FROM spans WHERE start_time > '2026-01-01') s"
            " USING (trace_id)",
            [("start_time", "low")],
        ),
    ],
)
def test_bounds_found(sql: str, expected: list[tuple[str, str]]) -> None:
    assert sides(sql) == expected


@pytest.mark.parametrize(
    "sql",
    [
        # OR: either side may hold the rows.
        "SELECT * FROM spans WHERE start_time > '2026-01-01' OR status_code = 'ERROR'",
        "SELECT * FROM spans WHERE NOT (start_time < '2026-01-01')",
        # The table twice (self-join): one view serves both references.
        "SELECT * FROM spans a JOIN spans b ON a.trace_id = b.trace_id"
        " WHERE a.start_time > '2026-01-01'",
        "SELECT * FROM spans WHERE start_time > '2026-01-01' UNION ALL SELECT * FROM spans",
        # A join in the FROM: the WHERE is applied after an outer join may add rows.
        "SELECT * FROM spans s LEFT JOIN logs l USING (trace_id) WHERE s.start_time > '2026-01-01'",
        # Not constants.
        "SELECT * FROM spans WHERE start_time > end_time",
        "SELECT * FROM spans WHERE start_time > (SELECT max(time) FROM logs)",
        "SELECT * FROM spans WHERE start_time > to_timestamp(random() * 1e9)",
        # Another table's column of the same name.
        "SELECT * FROM spans WHERE other.start_time > '2026-01-01'",
        # A CTE of the table's name hides the table.
        "WITH spans AS (SELECT * FROM logs) SELECT * FROM spans WHERE start_time > '2026-01-01'",
        # A sample draws from the rows read.
        "SELECT * FROM spans WHERE start_time > '2026-01-01' USING SAMPLE 10 PERCENT (bernoulli)",
        "SELECT * FROM spans TABLESAMPLE 5 WHERE start_time > '2026-01-01'",
        # A function of the column is not the column.
        "SELECT * FROM spans WHERE date_trunc('day', start_time) > '2026-01-01'",
    ],
)
def test_no_bounds_when_pruning_could_change_the_result(sql: str) -> None:
    assert sides(sql) == []


def test_clock_words_are_columns_when_the_table_has_them() -> None:
    sql = "SELECT * FROM spans WHERE start_time > current_date"
    assert len(window_bounds(check_query(sql).tree, "spans", STAMPS)) == 1
    assert window_bounds(check_query(sql).tree, "spans", STAMPS, ["current_date"]) == []


def test_windows_and_overlap() -> None:
    window = Window().narrowed("low", 10).narrowed("low", 5).narrowed("high", 20)
    assert window == Window(10, 20)
    assert window.overlaps(0, 10) and window.overlaps(20, 30) and window.overlaps(12, 15)
    assert not window.overlaps(0, 9) and not window.overlaps(21, 40)
    assert window.overlaps(None, None) and window.overlaps(None, 11) and window.overlaps(19, None)
    assert Window(None, 5).overlaps(None, None)


def test_reads_clock() -> None:
    tree = check_query("SELECT now() - INTERVAL 1 HOUR, TIMESTAMPTZ '2026-01-01 00:00:00+00'").tree
    first, second = tree["statements"][0]["node"]["select_list"]
    assert reads_clock(first) and not reads_clock(second)


@pytest.fixture
def engine(qsettings: Settings) -> Iterator[DuckDBEngine]:
    engine = DuckDBEngine(qsettings)
    yield engine
    engine.close()


@pytest.mark.integration
def test_pruned_queries_read_fewer_files_and_return_the_same_rows(
    catalog: Catalog, engine: DuckDBEngine
) -> None:
    spans = create_tables(catalog, "acme")["spans"]
    hour = 3600
    for i in range(6):  # six appends, an hour apart: six files with disjoint time ranges
        append(spans, span_rows(100, start=i * hour))
    windows = {
        "SELECT count(*) AS n FROM spans WHERE start_time >= TIMESTAMPTZ '2026-11-01 14:00:00+00'"
        " AND start_time < TIMESTAMPTZ '2026-11-01 15:00:00+00'": (1, 100),
        "SELECT count(*) AS n FROM spans WHERE start_time >= TIMESTAMPTZ '2026-11-01 14:00:00+00'"
        " AND start_time <= TIMESTAMPTZ '2026-11-01 15:00:00+00'": (2, 101),
        "SELECT count(*) AS n FROM spans s WHERE s.start_time BETWEEN"
        " '2026-11-01 13:00:30+00' AND '2026-11-01 14:00:10+00'": (2, 81),
        f"SELECT count(*) AS n FROM spans WHERE start_time = '{T0.isoformat()}'": (1, 1),
        "SELECT count(*) AS n FROM spans WHERE start_time > now()": (0, 0),
        "SELECT count(*) AS n FROM spans WHERE start_time > now() - INTERVAL 100000 DAY": (6, 600),
        "SELECT count(*) AS n FROM spans WHERE start_time > '2026-11-01 14:00:00+00'"
        " OR name = 'nothing'": (6, 399),
    }
    for sql, (files, rows) in windows.items():
        result = engine.query("acme", sql)
        assert result.table.to_pylist() == [{"n": rows}], sql
        assert result.files == {"spans": (files, 6)}, sql
    # Grouped over a window, compared with the same query that cannot be pruned (a no-op OR).
    window = "start_time >= '2026-11-01 15:30:00+00' AND start_time < '2026-11-01 16:00:05+00'"
    pruned = engine.query(
        "acme", f"SELECT status_code, count(*) AS n FROM spans WHERE {window} GROUP BY 1 ORDER BY 1"
    )
    full = engine.query(
        "acme",
        f"SELECT status_code, count(*) AS n FROM spans WHERE ({window}) OR false"
        " GROUP BY 1 ORDER BY 1",
    )
    assert pruned.files["spans"][0] < full.files["spans"][0]
    assert pruned.table.equals(full.table)
    assert sum(r["n"] for r in pruned.table.to_pylist()) == 5


@pytest.mark.integration
def test_a_window_in_local_time_means_the_same_instant(
    catalog: Catalog, engine: DuckDBEngine
) -> None:
    spans = create_tables(catalog, "acme")["spans"]
    append(spans, span_rows(10))
    append(spans, span_rows(10, start=86400))
    local = (T0 + dt.timedelta(days=1)).astimezone(dt.timezone(dt.timedelta(hours=-7)))
    result = engine.query(
        "acme", f"SELECT count(*) AS n FROM spans WHERE start_time >= '{local.isoformat()}'"
    )
    assert result.table.to_pylist() == [{"n": 10}]
    assert result.files == {"spans": (1, 2)}
