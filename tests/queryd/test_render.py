"""Text tables for `emberlake query`."""

from __future__ import annotations

from queryd.render import MAX_CELL, text_table


def test_aligned_columns_numbers_right_nulls_and_footer() -> None:
    result = {
        "columns": [{"name": "service", "type": "VARCHAR"}, {"name": "n", "type": "BIGINT"}],
        "rows": [["checkout", 1200], ["cart", 7], [None, None]],
        "row_count": 3,
        "elapsed_ms": 12.345,
        "truncated": False,
    }
    assert text_table(result).splitlines() == [
        "service  |    n",
        "---------+-----",
        "checkout | 1200",
        "cart     |    7",
        "NULL     | NULL",
        "(3 rows, 12.3 ms)",
    ]


def test_nested_long_and_truncated() -> None:
    result = {
        "columns": [
            {"name": "m", "type": "MAP(VARCHAR, VARCHAR)"},
            {"name": "s", "type": "VARCHAR"},
        ],
        "rows": [[{"k": "v"}, "x" * 100]],
        "row_count": 1,
        "truncated": True,
    }
    lines = text_table(result).splitlines()
    assert lines[2].startswith('{"k":"v"} | ' + "x" * (MAX_CELL - 1) + "…")
    assert lines[-1].startswith("(1 row) truncated")
