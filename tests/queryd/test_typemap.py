"""Iceberg types as DuckDB type names."""

from __future__ import annotations

import duckdb
import pytest
from pyiceberg.types import (
    BinaryType,
    BooleanType,
    DateType,
    DecimalType,
    DoubleType,
    FixedType,
    FloatType,
    IcebergType,
    IntegerType,
    ListType,
    LongType,
    MapType,
    NestedField,
    StringType,
    StructType,
    TimestampType,
    TimestamptzNanoType,
    TimestamptzType,
    TimeType,
    UUIDType,
)

from queryd.typemap import duckdb_type, quote_identifier, quote_literal

CASES = [
    (BooleanType(), "BOOLEAN"),
    (IntegerType(), "INTEGER"),
    (LongType(), "BIGINT"),
    (FloatType(), "FLOAT"),
    (DoubleType(), "DOUBLE"),
    (DecimalType(18, 3), "DECIMAL(18, 3)"),
    (DateType(), "DATE"),
    (TimeType(), "TIME"),
    (TimestampType(), "TIMESTAMP"),
    (TimestamptzType(), "TIMESTAMPTZ"),
    (TimestamptzNanoType(), "TIMESTAMPTZ"),
    (StringType(), "VARCHAR"),
    (UUIDType(), "UUID"),
    (BinaryType(), "BLOB"),
    (FixedType(16), "BLOB"),
    (MapType(1, StringType(), 2, StringType()), "MAP(VARCHAR, VARCHAR)"),
    (ListType(1, LongType()), "BIGINT[]"),
    (ListType(1, DoubleType()), "DOUBLE[]"),
    (
        StructType(
            NestedField(1, "a b", LongType()),
            NestedField(2, 'q"x', ListType(3, MapType(4, StringType(), 5, IntegerType()))),
        ),
        'STRUCT("a b" BIGINT, "q""x" MAP(VARCHAR, INTEGER)[])',
    ),
]


@pytest.mark.parametrize(("iceberg", "expected"), CASES)
def test_type_names_are_ones_duckdb_parses(iceberg: IcebergType, expected: str) -> None:
    name = duckdb_type(iceberg)
    assert name == expected
    con = duckdb.connect()
    con.execute(f"SELECT CAST(NULL AS {name})").fetchall()


def test_quoting() -> None:
    con = duckdb.connect()
    literal, identifier = quote_literal("it's"), quote_identifier('we"ird col')
    row = con.execute(f"SELECT {literal} AS {identifier}")
    assert row.fetchall() == [("it's",)]
    assert con.description[0][0] == 'we"ird col'
