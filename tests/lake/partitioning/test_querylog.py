"""SQL usage analysis and workload summaries of the query log."""

from __future__ import annotations

import json

from lake.layout import parse_query_record
from lake.partitioning.querylog import (
    EQUALITY,
    OTHER,
    RANGE,
    QueryRecord,
    analyze_sql,
    summarize,
)
from queryd.querylog import QueryRecord as LoggedQuery

SPAN_COLUMNS = ["start_time", "trace_id", "service_name", "name", "duration_ms", "status_code"]


def test_equality_range_and_grouping_are_told_apart() -> None:
    usage = analyze_sql(
        "SELECT service_name, count(*) FROM spans "
        "WHERE start_time >= now() - INTERVAL 1 HOUR AND status_code = 'ERROR' "
        "GROUP BY service_name ORDER BY 2 DESC LIMIT 10",
        SPAN_COLUMNS,
    )
    assert usage.tables == {"spans"}
    assert usage.filters == {"start_time": {RANGE}, "status_code": {EQUALITY}}
    assert usage.grouped == {"service_name"}


def test_literal_on_the_left_in_lists_between_and_qualified_names() -> None:
    usage = analyze_sql(
        "select * from main.spans s where '4bf92f3577b34da6a3ce929d0e0e4736' = s.trace_id "
        "or s.service_name in ('a', 'b') and duration_ms between 10 and 20",
        SPAN_COLUMNS,
    )
    assert usage.tables == {"spans"}
    assert usage.filters["trace_id"] == {EQUALITY}
    assert usage.filters["service_name"] == {EQUALITY}
    assert usage.filters["duration_ms"] == {RANGE}


def test_strings_comments_and_select_list_do_not_count_as_filters() -> None:
    usage = analyze_sql(
        "-- where trace_id = 'x'\n"
        "SELECT trace_id, 'service_name = 1' AS s, CASE WHEN name = 'a' THEN 1 END FROM logs "
        "/* where name = 'b' */ WHERE lower(name) LIKE '%x%'",
        SPAN_COLUMNS,
    )
    assert usage.tables == {"logs"}
    assert usage.filters == {"name": {OTHER}}
    assert usage.grouped == frozenset()


def test_subqueries_keep_the_outer_clause() -> None:
    usage = analyze_sql(
        "SELECT name FROM spans WHERE trace_id IN (SELECT trace_id FROM spans "
        "WHERE status_code = 'ERROR' GROUP BY trace_id) AND service_name = 'api' "
        "GROUP BY name",
        SPAN_COLUMNS,
    )
    assert usage.filters["trace_id"] == {EQUALITY}
    assert usage.filters["service_name"] == {EQUALITY}
    assert usage.filters["status_code"] == {EQUALITY}
    assert usage.grouped == {"trace_id", "name"}


def test_quoted_identifiers_and_joins() -> None:
    usage = analyze_sql(
        'SELECT * FROM spans JOIN logs ON spans.trace_id = logs.trace_id WHERE "service_name" = 1',
        SPAN_COLUMNS,
    )
    assert usage.tables == {"spans", "logs"}
    assert "trace_id" in usage.filters
    assert usage.filters["service_name"] == {EQUALITY}


def test_summarize_counts_only_successful_recent_queries_on_the_table() -> None:
    records = [
        QueryRecord("SELECT * FROM spans WHERE trace_id = 'a'", elapsed_ms=10, at=100),
        QueryRecord("SELECT * FROM spans WHERE trace_id = 'b'", elapsed_ms=30, at=200),
        QueryRecord("SELECT * FROM spans WHERE trace_id = 'c'", elapsed_ms=99, at=200, ok=False),
        QueryRecord("SELECT * FROM spans WHERE trace_id = 'd'", elapsed_ms=99, at=10),
        QueryRecord("SELECT * FROM logs WHERE trace_id = 'e'", elapsed_ms=99, at=200),
        QueryRecord(
            "SELECT service_name, count(*) FROM spans GROUP BY service_name", elapsed_ms=20, at=300
        ),
    ]
    workload = summarize(records, "spans", SPAN_COLUMNS, since=50)
    assert workload.queries == 3
    trace = workload.usage("trace_id")
    assert (trace.filtered, trace.equality, trace.range) == (2, 2, 0)
    assert trace.mean_filtered_ms == 20
    assert workload.usage("service_name").grouped == 1
    assert workload.usage("name").filtered == 0
    assert workload.mean_ms == 20
    assert workload.share(trace.equality) == 2 / 3


def test_query_daemon_log_lines_are_policy_input() -> None:
    line = LoggedQuery(
        "acme",
        "SELECT 1 FROM spans",
        ok=False,
        elapsed_ms=12.5,
        tables=["spans"],
        at=1_800_000_000.25,
    ).to_json()
    record = parse_query_record(json.loads(line))
    assert record == QueryRecord(
        "SELECT 1 FROM spans",
        elapsed_ms=12.5,
        at=1_800_000_000.25,
        ok=False,
        tenant="acme",
        tables=("spans",),
    )
    assert parse_query_record({"sql": 1, "at": 0}) is None


def test_logged_time_windows_shape_the_workload() -> None:
    line = LoggedQuery(
        "acme",
        "SELECT count(*) FROM spans WHERE start_time >= now() - INTERVAL 4 MINUTE",
        ok=True,
        elapsed_ms=3.0,
        tables=["spans"],
        time_windows={"spans": 240.0},
        at=1_800_000_000.0,
    ).to_json()
    narrow = parse_query_record(json.loads(line))
    assert narrow is not None and narrow.time_windows == (("spans", 240.0),)
    wide = QueryRecord(
        "SELECT count(*) FROM spans WHERE start_time > '2026-11-01'",
        at=1_800_000_000.0,
        time_windows=(("main.spans", 3 * 86400.0),),
    )
    unknown = QueryRecord("SELECT * FROM spans WHERE start_time > now() - INTERVAL 1 HOUR")
    lookup = QueryRecord("SELECT * FROM spans WHERE trace_id = 'x'", time_windows=(("spans", 9),))
    workload = summarize([narrow, wide, unknown, lookup], "spans", SPAN_COLUMNS)
    windows = sorted((s.window_seconds or 0.0) for s in workload.shapes if s.range)
    # Rounded up to 5 minutes and a week; unknown when the log says nothing.
    assert windows == [0.0, 300.0, 604800.0]
    # A query without a time range has no window, whatever the log says.
    assert [s.window_seconds for s in workload.shapes if not s.range] == [None]


def test_sampled_lines_count_as_the_queries_they_stand_for() -> None:
    lookup = "SELECT * FROM spans WHERE trace_id = 'x'"
    window = "SELECT count(*) FROM spans WHERE start_time > now() - INTERVAL 1 HOUR"
    records = [
        QueryRecord(lookup, elapsed_ms=2.0, weight=8),
        QueryRecord(window, elapsed_ms=50.0),
        QueryRecord(window, elapsed_ms=60.0),
    ]
    workload = summarize(records, "spans", SPAN_COLUMNS)
    assert workload.queries == 10
    assert workload.usage("trace_id").equality == 8 and workload.usage("start_time").range == 2
    assert workload.mean_ms == (8 * 2.0 + 50.0 + 60.0) / 10
    assert workload.p95_ms == 60.0
    line = json.dumps({"sql": lookup, "at": 1.0, "weight": 8})
    parsed = parse_query_record(json.loads(line))
    assert parsed is not None and parsed.weight == 8
