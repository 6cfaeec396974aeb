"""The type model of schema inference: OTLP value kinds, column types and the one widening table.

An OTLP ``AnyValue`` holds one of seven *kinds*: string, bool, int (int64), double, bytes, array
or kvlist (an unset ``AnyValue`` is the eighth, ``empty``). A promoted column has one of four
*column types*: boolean, long, double or string. Every type decision of schema inference goes
through two tables in this module:

``KIND_TYPES`` (the column type a single kind asks for)::

    bool -> boolean     int -> long     double -> double     string -> string
    bytes -> string (hex)      array, kvlist -> string (JSON)      empty -> (nothing)

``promote(old, new)`` (the type that holds values of both)::

    same + same       -> same
    long + double     -> double
    boolean + long    -> string      boolean + double -> string
    anything + string -> string

Integers always become ``long``, even small ones: Iceberg could widen int to long later, but
starting at long avoids a schema change for the first large value.

``promote`` answers what a column *should* be; it is not an Iceberg promotion. Iceberg only widens
int -> long, float -> double and decimal precision, so none of the widenings above can be applied
to an existing column. How the inference copes with that (a new sibling column) is described in
:mod:`lake.schema_inference.policy`.

Conversion into a column (``accepts``) is strict, so a typed column never holds a lossy value:
a boolean column takes bools, a long column takes ints, a double column takes doubles and ints
up to 2**53 in magnitude, a string column takes every kind as its text. Anything else stays only
in the attributes map, which always keeps every attribute.

Text rendering follows the lake's map contract: strings as they are, bools/ints/doubles via
``str()``, bytes as lower-case hex, arrays and kvlists as compact JSON, an empty value as null.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

import pyarrow as pa
from pyiceberg.types import BooleanType, DoubleType, IcebergType, LongType, StringType


class Kind(StrEnum):
    """The kind of an OTLP ``AnyValue``."""

    STRING = "string"
    BOOL = "bool"
    INT = "int"
    DOUBLE = "double"
    BYTES = "bytes"
    ARRAY = "array"
    KVLIST = "kvlist"
    EMPTY = "empty"


#: Small integer code of each kind, used in the per-batch arrays (index into KIND_ORDER).
KIND_ORDER: tuple[Kind, ...] = tuple(Kind)
KIND_CODE: dict[str, int] = {kind.value: code for code, kind in enumerate(KIND_ORDER)}
# The flattener may hand over protobuf oneof names ("int_value") instead of kind names.
KIND_CODE.update({f"{kind.value}_value": code for code, kind in enumerate(KIND_ORDER)})
KIND_CODE[""] = KIND_CODE[Kind.EMPTY]

CODE_STRING = KIND_CODE[Kind.STRING]
CODE_BOOL = KIND_CODE[Kind.BOOL]
CODE_INT = KIND_CODE[Kind.INT]
CODE_DOUBLE = KIND_CODE[Kind.DOUBLE]
CODE_BYTES = KIND_CODE[Kind.BYTES]
CODE_ARRAY = KIND_CODE[Kind.ARRAY]
CODE_KVLIST = KIND_CODE[Kind.KVLIST]
CODE_EMPTY = KIND_CODE[Kind.EMPTY]


class ColumnType(StrEnum):
    """The type of a promoted column."""

    BOOLEAN = "boolean"
    LONG = "long"
    DOUBLE = "double"
    STRING = "string"


KIND_TYPES: dict[Kind, ColumnType | None] = {
    Kind.BOOL: ColumnType.BOOLEAN,
    Kind.INT: ColumnType.LONG,
    Kind.DOUBLE: ColumnType.DOUBLE,
    Kind.STRING: ColumnType.STRING,
    Kind.BYTES: ColumnType.STRING,
    Kind.ARRAY: ColumnType.STRING,
    Kind.KVLIST: ColumnType.STRING,
    Kind.EMPTY: None,
}

# The widening table; lookups are symmetric, equal types widen to themselves.
_WIDENING: dict[frozenset[ColumnType], ColumnType] = {
    frozenset({ColumnType.LONG, ColumnType.DOUBLE}): ColumnType.DOUBLE,
    frozenset({ColumnType.BOOLEAN, ColumnType.LONG}): ColumnType.STRING,
    frozenset({ColumnType.BOOLEAN, ColumnType.DOUBLE}): ColumnType.STRING,
    frozenset({ColumnType.BOOLEAN, ColumnType.STRING}): ColumnType.STRING,
    frozenset({ColumnType.LONG, ColumnType.STRING}): ColumnType.STRING,
    frozenset({ColumnType.DOUBLE, ColumnType.STRING}): ColumnType.STRING,
}

#: Kinds each column type accepts without loss (ints into double only up to 2**53).
ACCEPTS: dict[ColumnType, frozenset[Kind]] = {
    ColumnType.BOOLEAN: frozenset({Kind.BOOL}),
    ColumnType.LONG: frozenset({Kind.INT}),
    ColumnType.DOUBLE: frozenset({Kind.INT, Kind.DOUBLE}),
    ColumnType.STRING: frozenset(KIND_ORDER) - {Kind.EMPTY},
}

#: Largest integer magnitude a double column takes exactly.
MAX_EXACT_INT = 2**53

#: Name suffix of a sibling column added when a key's type outgrows its column (see policy);
#: the widening table only ever widens to double or string.
SIBLING_SUFFIX: dict[ColumnType, str] = {
    ColumnType.DOUBLE: "__double",
    ColumnType.STRING: "__str",
}

_ARROW: dict[ColumnType, pa.DataType] = {
    ColumnType.BOOLEAN: pa.bool_(),
    ColumnType.LONG: pa.int64(),
    ColumnType.DOUBLE: pa.float64(),
    ColumnType.STRING: pa.string(),
}

_ICEBERG: dict[ColumnType, IcebergType] = {
    ColumnType.BOOLEAN: BooleanType(),
    ColumnType.LONG: LongType(),
    ColumnType.DOUBLE: DoubleType(),
    ColumnType.STRING: StringType(),
}


def promote(old: ColumnType | None, new: ColumnType) -> ColumnType:
    """The narrowest column type holding values of both ``old`` and ``new``.

    ``old`` is ``None`` when there is no type yet.
    """
    if old is None or old == new:
        return new
    return _WIDENING[frozenset({old, new})]


def column_type_of(kind: Kind | str) -> ColumnType | None:
    """The column type a value of this kind asks for; ``None`` for an empty value."""
    return KIND_TYPES[Kind(kind)]


def accepts(column_type: ColumnType, kind: Kind | str, value: Any = None) -> bool:
    """Whether a column of ``column_type`` stores a value of ``kind`` without loss."""
    kind = Kind(kind)
    if kind not in ACCEPTS[column_type]:
        return False
    if column_type is ColumnType.DOUBLE and kind is Kind.INT and value is not None:
        return abs(int(value)) < MAX_EXACT_INT
    return True


def arrow_type(column_type: ColumnType) -> pa.DataType:
    """The Arrow type a promoted column is built with."""
    return _ARROW[column_type]


def iceberg_type(column_type: ColumnType) -> IcebergType:
    """The Iceberg type a promoted column is declared with."""
    return _ICEBERG[column_type]


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def json_text(value: Any) -> str:
    """Compact JSON of an array or kvlist value (bytes inside become hex)."""
    return json.dumps(_jsonable(value), separators=(",", ":"))


def render_text(kind: Kind | str, value: Any) -> str | None:
    """The map text of one attribute value, per the lake's map contract (empty: ``None``)."""
    kind = Kind(kind)
    if kind is Kind.STRING:
        return str(value)
    if kind is Kind.BYTES:
        # A str is taken as already rendered hex.
        return value if isinstance(value, str) else bytes(value).hex()
    if kind in (Kind.ARRAY, Kind.KVLIST):
        return value if isinstance(value, str) else json_text(value)
    if kind is Kind.EMPTY:
        return None
    return str(value)


def kind_code_of(any_value: Any) -> int:
    """The kind code of an OTLP ``AnyValue`` proto (for building kinds next to a map column)."""
    return KIND_CODE[any_value.WhichOneof("value") or ""]
