"""Iceberg types rendered as DuckDB type names (pure).

One visitor holds every type decision, so the view definitions, the empty-table views and the
table descriptions served over HTTP agree on what a column is.
"""

from __future__ import annotations

import functools
import threading

import duckdb
from pyiceberg.schema import Schema, SchemaVisitorPerPrimitiveType, visit
from pyiceberg.types import (
    BinaryType,
    BooleanType,
    DateType,
    DecimalType,
    DoubleType,
    FixedType,
    FloatType,
    GeographyType,
    GeometryType,
    IcebergType,
    IntegerType,
    ListType,
    LongType,
    MapType,
    NestedField,
    StringType,
    StructType,
    TimestampNanoType,
    TimestampType,
    TimestamptzNanoType,
    TimestamptzType,
    TimeType,
    UnknownType,
    UUIDType,
)


def quote_identifier(name: str) -> str:
    """A DuckDB identifier in double quotes, safe for any column or table name."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """A DuckDB string literal in single quotes."""
    return "'" + text.replace("'", "''") + "'"


class DuckDBTypeVisitor(SchemaVisitorPerPrimitiveType[str]):
    """Renders an Iceberg type as the DuckDB type DuckDB reads its Parquet columns into."""

    def schema(self, schema: Schema, struct_result: str) -> str:
        return struct_result

    def struct(self, struct: StructType, field_results: list[str]) -> str:
        members = ", ".join(field_results)
        return f"STRUCT({members})"

    def field(self, field: NestedField, field_result: str) -> str:
        return f"{quote_identifier(field.name)} {field_result}"

    def list(self, list_type: ListType, element_result: str) -> str:
        return f"{element_result}[]"

    def map(self, map_type: MapType, key_result: str, value_result: str) -> str:
        return f"MAP({key_result}, {value_result})"

    def visit_fixed(self, fixed_type: FixedType) -> str:
        return "BLOB"

    def visit_decimal(self, decimal_type: DecimalType) -> str:
        return f"DECIMAL({decimal_type.precision}, {decimal_type.scale})"

    def visit_boolean(self, boolean_type: BooleanType) -> str:
        return "BOOLEAN"

    def visit_integer(self, integer_type: IntegerType) -> str:
        return "INTEGER"

    def visit_long(self, long_type: LongType) -> str:
        return "BIGINT"

    def visit_float(self, float_type: FloatType) -> str:
        return "FLOAT"

    def visit_double(self, double_type: DoubleType) -> str:
        return "DOUBLE"

    def visit_date(self, date_type: DateType) -> str:
        return "DATE"

    def visit_time(self, time_type: TimeType) -> str:
        return "TIME"

    def visit_timestamp(self, timestamp_type: TimestampType) -> str:
        return "TIMESTAMP"

    def visit_timestamp_ns(self, timestamp_ns_type: TimestampNanoType) -> str:
        return "TIMESTAMP_NS"

    def visit_timestamptz(self, timestamptz_type: TimestamptzType) -> str:
        return "TIMESTAMPTZ"

    def visit_timestamptz_ns(self, timestamptz_ns_type: TimestamptzNanoType) -> str:
        # DuckDB has no nanosecond type with a zone; microseconds with the zone keep the meaning.
        return "TIMESTAMPTZ"

    def visit_string(self, string_type: StringType) -> str:
        return "VARCHAR"

    def visit_uuid(self, uuid_type: UUIDType) -> str:
        return "UUID"

    def visit_binary(self, binary_type: BinaryType) -> str:
        return "BLOB"

    def visit_unknown(self, unknown_type: UnknownType) -> str:
        # An unknown-typed column holds only nulls; VARCHAR reads and prints them everywhere.
        return "VARCHAR"

    def visit_geometry(self, geometry_type: GeometryType) -> str:
        return "BLOB"

    def visit_geography(self, geography_type: GeographyType) -> str:
        return "BLOB"


def duckdb_type(iceberg_type: IcebergType | Schema) -> str:
    """The DuckDB type name of an Iceberg type: ``map<string, string>`` -> MAP(VARCHAR, VARCHAR)."""
    return visit(iceberg_type, DuckDBTypeVisitor())


_spelling_lock = threading.Lock()


@functools.lru_cache(maxsize=1024)
def _spelled(type_name: str) -> str:
    with _spelling_lock:
        return str(duckdb.sqltype(type_name))


def display_type(iceberg_type: IcebergType) -> str:
    """The type as DuckDB names it in query results (``TIMESTAMP WITH TIME ZONE``, ...)."""
    return _spelled(duckdb_type(iceberg_type))
