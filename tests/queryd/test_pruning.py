"""File pruning by time windows and string equality: which predicates qualify; pruning never
changes rows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.transforms import BucketTransform

from emberlake.settings import Settings
from queryd.engine import DuckDBEngine
from queryd.guard import check_query
from queryd.pruning import Window, equality_filters, reads_clock, window_bounds
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
    assert pruned.time_windows == {"spans": pytest.approx(1805.0)} and full.time_windows == {}
    # A lower bound alone reads up to the newest span (17:01:39): that is its window.
    since = engine.query(
        "acme", "SELECT count(*) FROM spans WHERE start_time >= '2026-11-01 17:00'"
    )
    assert since.time_windows == {"spans": 99.0}
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


STRINGS = ["service_name", "trace_id", "name", "status_code"]


def equalities(sql: str) -> list[tuple[str, tuple[str, ...]]]:
    found = equality_filters(check_query(sql).tree, "spans", STRINGS)
    return [(e.column, e.values) for e in found]


def test_equality_filters_with_string_literals() -> None:
    assert equalities(
        "SELECT * FROM spans s WHERE s.service_name = 'checkout' AND 'x' = trace_id"
        " AND name IN ('a', 'b') AND start_time > now()"
    ) == [("service_name", ("checkout",)), ("trace_id", ("x",)), ("name", ("a", "b"))]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM spans WHERE service_name = 'a' OR name = 'b'",
        "SELECT * FROM spans WHERE service_name NOT IN ('a')",
        "SELECT * FROM spans WHERE service_name IN ('a', NULL)",
        "SELECT * FROM spans WHERE service_name <> 'a'",
        # Casts and other types compare by DuckDB's rules, not the manifests' string bounds.
        "SELECT * FROM spans WHERE status_code = 5",
        "SELECT * FROM spans WHERE service_name = 'a'::VARCHAR",
        "SELECT * FROM spans WHERE lower(service_name) = 'a'",
        "SELECT * FROM spans WHERE service_name = name",
        "SELECT * FROM spans a JOIN spans b USING (trace_id) WHERE a.service_name = 'x'",
        "SELECT * FROM spans WHERE service_name = 'a' USING SAMPLE 10 PERCENT (bernoulli)",
        "SELECT * FROM spans WHERE other.service_name = 'a'",
    ],
)
def test_no_equality_pruning_when_it_could_change_the_result(sql: str) -> None:
    assert equalities(sql) == []


@pytest.mark.integration
def test_equality_filters_prune_by_bounds_and_partition_values(
    catalog: Catalog, engine: DuckDBEngine
) -> None:
    spans = create_tables(catalog, "acme")["spans"]
    # Day-partitioned: one file per service, told apart by their service_name bounds.
    for i, service in enumerate(("cart", "checkout", "frontend")):
        append(spans, span_rows(50, service=service, start=i * 50))
    # Then by bucket of trace id: lookups skip the other buckets' files although every
    # file's trace id bounds overlap.
    with spans.update_spec() as update:
        update.add_field("trace_id", BucketTransform(8), "trace_bucket")
    append(spans, span_rows(400, service="search", start=1000))
    total = len(spans.inspect.files())
    assert total > 4
    cases = {
        "SELECT count(*) AS n FROM spans WHERE service_name = 'checkout'": (1, 50),
        "SELECT count(*) AS n FROM spans WHERE service_name IN ('cart', 'frontend')": (2, 100),
        "SELECT count(*) AS n FROM spans WHERE service_name = 'nobody'": (0, 0),
        f"SELECT count(*) AS n FROM spans WHERE trace_id = '{1234:032x}'": (4, 1),
        f"SELECT count(*) AS n FROM spans WHERE trace_id = '{10:032x}' AND service_name = 'cart'": (
            1,
            1,
        ),
    }
    for sql, (files, rows) in cases.items():
        result = engine.query("acme", sql)
        assert result.table.to_pylist() == [{"n": rows}], sql
        assert result.files == {"spans": (files, total)}, sql
    # The same rows as a query that cannot be pruned (a no-op OR), for every trace id.
    for i in range(1000, 1400, 37):
        pruned = engine.query("acme", f"SELECT span_id FROM spans WHERE trace_id = '{i:032x}'")
        full = engine.query(
            "acme", f"SELECT span_id FROM spans WHERE trace_id = '{i:032x}' OR false"
        )
        assert pruned.files["spans"][0] < full.files["spans"][0] == total
        assert pruned.table.to_pylist() == full.table.to_pylist() == [{"span_id": f"{i:016x}"}]
