"""Building the typed Arrow arrays of promoted columns for one batch.

Each active column takes the values of its key that its type accepts without loss (see
:mod:`lake.schema_inference.types`); every other value of the key stays only in the attributes
map, which the flattener fills with every attribute, so no value is ever dropped. Superseded
columns get all-null arrays, so the batch always carries every promoted column.

Typed values are recovered from the map text with Arrow casts (the text of ints, doubles and
bools round-trips exactly), grouped by key with NumPy: no per-value Python work. A text that does
not parse as its declared kind (only possible with malformed input) is left out of the typed
column rather than failing the batch.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lake.schema_inference.attributes import Attributes
from lake.schema_inference.naming import Scope
from lake.schema_inference.observe import batch_rows
from lake.schema_inference.policy import Decisions
from lake.schema_inference.state import InferenceState
from lake.schema_inference.types import (
    CODE_BOOL,
    CODE_DOUBLE,
    CODE_EMPTY,
    CODE_INT,
    MAX_EXACT_INT,
    ColumnType,
    arrow_type,
)


def build_columns(
    state: InferenceState,
    decisions: Decisions,
    batch: Mapping[Scope | str, Attributes],
    timestamp_us: int,
) -> dict[str, pa.Array]:
    """Arrays for every promoted column (by name), and their statistics recorded in ``state``."""
    scoped = {Scope(scope): attrs for scope, attrs in batch.items()}
    n_rows = batch_rows(scoped)
    out: dict[str, pa.Array] = {}
    for column in decisions.columns:
        kind = arrow_type(column.type)
        if not column.active:
            out[column.name] = pa.nulls(n_rows, kind)
            continue
        attrs = scoped.get(column.scope)
        positions = attrs.key_groups.get(column.key) if attrs is not None else None
        if attrs is None or positions is None:
            array, unconverted = pa.nulls(n_rows, kind), 0
        else:
            array, unconverted = typed_values(attrs, positions, column.type)
        out[column.name] = array
        state.columns[column.name].stats.add(array, unconverted, timestamp_us)
    return out


#: Arrow field metadata key carrying a column's provenance (the flattener's convention too).
DOC_KEY = b"doc"


def promoted_fields(decisions: Decisions) -> list[pa.Field]:
    """Arrow fields of the promoted columns, optional, with their doc as ``doc`` metadata."""
    return [
        pa.field(c.name, arrow_type(c.type), nullable=True, metadata={DOC_KEY: c.doc.encode()})
        for c in decisions.columns
    ]


def typed_values(
    attrs: Attributes, positions: np.ndarray, column_type: ColumnType
) -> tuple[pa.Array, int]:
    """One column over the batch's rows from a key's attribute ``positions``.

    Returns the array and how many non-empty values of the key it could not hold.
    """
    base, nonempty_rows = _typed_base(attrs, positions, column_type)
    if attrs.row_index is None:
        array, nonempty = base, len(nonempty_rows)
    else:
        array = attrs.expand(base)
        nonempty = int(attrs.multiplicity[nonempty_rows].sum())
    return array, nonempty - (len(array) - array.null_count)


def _typed_base(
    attrs: Attributes, positions: np.ndarray, column_type: ColumnType
) -> tuple[pa.Array, np.ndarray]:
    """The column over the base rows, and the base row of each non-empty value of the key."""
    n_rows = attrs.base_rows
    kinds = attrs.kinds[positions]
    rows = attrs.row_of[positions]
    texts = attrs.texts.take(pa.array(positions))
    nonempty_rows = rows[kinds != CODE_EMPTY]

    ok = _accepted(kinds, column_type)
    if len(rows) > 1:
        # Within a row a repeated key keeps only its last value (rows ascend with positions).
        ok[:-1] &= rows[1:] != rows[:-1]
    if not ok.all():
        rows, kinds = rows[ok], kinds[ok]
        texts = texts.filter(pa.array(ok))
    values = _cast(texts, column_type)
    if column_type is ColumnType.DOUBLE and (kinds == CODE_INT).any():
        as_float = values.to_numpy(zero_copy_only=False)
        exact = ~((kinds == CODE_INT) & ~(np.abs(as_float) < MAX_EXACT_INT))
        if not exact.all():
            rows = rows[exact]
            values = values.filter(pa.array(exact))
    if len(rows) == n_rows:
        return values, nonempty_rows  # every row has exactly one value, in row order
    index = np.full(n_rows, -1, dtype=np.int64)
    index[rows] = np.arange(len(rows))
    return values.take(pa.array(index, mask=index < 0)), nonempty_rows


def _accepted(kinds: np.ndarray, column_type: ColumnType) -> np.ndarray:
    if column_type is ColumnType.STRING:
        return kinds != CODE_EMPTY
    if column_type is ColumnType.LONG:
        return kinds == CODE_INT
    if column_type is ColumnType.DOUBLE:
        return (kinds == CODE_DOUBLE) | (kinds == CODE_INT)
    return kinds == CODE_BOOL


def _cast(texts: pa.Array, column_type: ColumnType) -> pa.Array:
    if column_type is ColumnType.STRING:
        return texts.cast(pa.string())
    target = arrow_type(column_type)
    try:
        return pc.cast(texts, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.array([_parse(t, column_type) for t in texts.to_pylist()], target)


def _parse(text: str | None, column_type: ColumnType) -> object:
    if text is None:
        return None
    try:
        if column_type is ColumnType.LONG:
            value = int(text)
            return value if -(2**63) <= value < 2**63 else None
        if column_type is ColumnType.DOUBLE:
            return float(text)
    except ValueError:
        return None
    lowered = text.strip().lower()
    return True if lowered == "true" else False if lowered == "false" else None
