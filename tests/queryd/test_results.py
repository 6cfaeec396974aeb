"""Wire encodings of query results: JSON-safe values, CSV and Arrow streams."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import duckdb
import pyarrow as pa

from queryd.results import arrow_stream, csv_text, json_rows, read_arrow_stream


def duck(sql: str) -> pa.Table:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con.sql(sql).to_arrow_table()


def test_every_duckdb_type_becomes_json_safe() -> None:
    table = duck(
        "SELECT TIMESTAMPTZ '2026-11-01 12:00:00.123456+00' AS ts,"
        " TIMESTAMP '2026-11-01 12:00' AS t,"
        " DATE '2026-11-01' AS d, TIME '10:11:12' AS tm, 1.25::DECIMAL(10, 2) AS dec,"
        " 'nan'::DOUBLE AS nan, 'inf'::DOUBLE AS inf, 2.5::FLOAT AS f, '\\xAB\\x01'::BLOB AS b,"
        " MAP {'k': 'v', 'n': NULL} AS m, [1, NULL, 3] AS l, {'a': 1, 'b': [TRUE]} AS s,"
        " INTERVAL 90 MINUTE AS iv, INTERVAL 1 MONTH + INTERVAL 2 DAY AS iv2,"
        " 170141183460469231731687303715884105727::HUGEINT AS big, NULL::VARCHAR AS nothing,"
        " 'a'::ENUM('a', 'b') AS e, '6ba7b810-9dad-11d1-80b4-00c04fd430c8'::UUID AS u"
    )
    [row] = json_rows(table)
    assert row == [
        "2026-11-01T12:00:00.123456+00:00",
        "2026-11-01T12:00:00.000000",
        "2026-11-01",
        "10:11:12.000000",
        1.25,
        None,
        None,
        2.5,
        "ab01",
        {"k": "v", "n": None},
        [1, None, 3],
        {"a": 1, "b": [True]},
        "PT5400S",
        "P1M2D",
        170141183460469231731687303715884105727,
        None,
        "a",
        "6ba7b810-9dad-11d1-80b4-00c04fd430c8",
    ]
    json.dumps(row, allow_nan=False)


def test_decimals_keep_integers_whole() -> None:
    table = pa.table({"x": pa.array([Decimal("3"), Decimal("2.5"), None], pa.decimal128(10, 1))})
    assert json_rows(table) == [[3], [2.5], [None]]


def test_no_columns_no_rows() -> None:
    assert json_rows(pa.table({})) == []
    assert json_rows(duck("SELECT 1 AS x WHERE false")) == []


def test_csv_has_a_header_and_json_for_nested_values() -> None:
    table = duck(
        "SELECT * FROM (VALUES (1, 'a,b', MAP {'k': 'v'}, TRUE), (2, NULL, NULL, FALSE))"
        " t(n, s, m, flag)"
    )
    assert csv_text(table) == 'n,s,m,flag\n1,"a,b","{""k"": ""v""}",true\n2,,,false\n'


def test_arrow_stream_round_trips() -> None:
    table = duck("SELECT range AS i, [range] AS l, MAP {'k': range::VARCHAR} AS m FROM range(3)")
    back = read_arrow_stream(arrow_stream(table))
    assert back.equals(table)
    assert back.column("i").to_pylist() == [0, 1, 2]


def test_python_timedelta_and_datetime_values() -> None:
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    table = pa.table(
        {
            "when": pa.array([when], pa.timestamp("us", "UTC")),
            "took": pa.array([dt.timedelta(seconds=1.5)], pa.duration("us")),
        }
    )
    assert json_rows(table) == [["2026-01-02T03:04:05.000000+00:00", "PT1.5S"]]


def test_nested_timestamps_and_wide_columns_agree_on_format() -> None:
    table = duck(
        "SELECT TIMESTAMPTZ '2026-11-01 12:00:00+00' AS ts,"
        " [TIMESTAMPTZ '2026-11-01 12:00:00+00'] AS nested,"
        " MAP {'a': 1.5::DOUBLE, 'b': 'nan'::DOUBLE} AS m"
    )
    [[flat, [nested], m]] = json_rows(table)
    assert flat == nested == "2026-11-01T12:00:00.000000+00:00"
    assert m == {"a": 1.5, "b": None}
