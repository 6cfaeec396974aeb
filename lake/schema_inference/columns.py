"""Building the typed Arrow arrays of promoted columns for one batch.

Each active column takes the values of its key that its type accepts without loss (see
:mod:`lake.schema_inference.types`); every other value of the key stays only in the attributes
map, which the flattener fills with every attribute, so no value is ever dropped. Superseded
columns get all-null arrays, so the batch always carries every promoted column.

How: each entry of the batch's entry table is converted once per column type with an Arrow cast
(the text of ints, doubles and bools round-trips exactly); one NumPy scatter gives, for every
promoted key and row, the entry of the key's last value in that row; each column is then a
single Arrow ``take``. No per-value Python work. A text that does not parse as its declared kind
(only possible with malformed input) is left out of the typed column rather than failing the
batch.
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
    active = [c for c in decisions.columns if c.active and c.scope in scoped]
    building = {c.name for c in active}
    tables = {
        scope: (scoped[scope].entry_table([c.key for c in active if c.scope is scope]), 0)
        for scope in {c.scope for c in active}
    }
    out: dict[str, pa.Array] = {}
    for column in decisions.columns:
        if column.name not in building:
            out[column.name] = pa.nulls(n_rows, arrow_type(column.type))
            continue
        table, j = tables[column.scope]
        tables[column.scope] = (table, j + 1)
        array, unconverted, distinct = _column(
            scoped[column.scope], column.key, column.type, table[:, j]
        )
        out[column.name] = array
        state.columns[column.name].stats.add(array, unconverted, timestamp_us, distinct)
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
    attrs: Attributes, key: str, column_type: ColumnType
) -> tuple[pa.Array, int, pa.Array | None]:
    """One column over the batch's rows from a key's values.

    Returns the array, how many non-empty values of the key it could not hold, and (when cheap
    to know, from interned entries) its distinct values, else None.
    """
    return _column(attrs, key, column_type, attrs.entry_table([key])[:, 0])


def _column(
    attrs: Attributes, key: str, column_type: ColumnType, row_entries: np.ndarray
) -> tuple[pa.Array, int, pa.Array | None]:
    if attrs.row_index is not None:
        row_entries = row_entries[attrs.row_index]
    else:
        row_entries = np.ascontiguousarray(row_entries)
    typed = _typed_entries(attrs, column_type)
    missing = row_entries < 0
    if missing.any():
        array = typed.take(pa.array(row_entries, mask=missing))
    else:
        array = typed.take(pa.array(row_entries))
    distinct = None
    if attrs.ids is not None:
        # Distinct entries carry the distinct values: no hashing of the whole column.
        used = np.flatnonzero(np.bincount(row_entries[~missing], minlength=len(typed)))
        distinct = typed.take(pa.array(used))
    counts = attrs.kind_counts().get(key, {})
    nonempty = sum(n for code, n in counts.items() if code != CODE_EMPTY)
    return array, nonempty - (len(array) - array.null_count), distinct


def _typed_entries(attrs: Attributes, column_type: ColumnType) -> pa.Array:
    """Every entry converted to ``column_type``, null where it does not fit; once per type."""
    cache: dict[ColumnType, pa.Array] = attrs.__dict__.setdefault("_typed_entries", {})
    found = cache.get(column_type)
    if found is None:
        found = cache[column_type] = _convert(attrs.entry_texts, attrs.entry_kinds, column_type)
    return found


def _convert(texts: pa.Array, kinds: np.ndarray, column_type: ColumnType) -> pa.Array:
    ok = _accepted(kinds, column_type)
    if column_type is ColumnType.STRING:
        return texts if ok.all() else pc.if_else(pa.array(ok), texts, pa.scalar(None, pa.string()))
    picked = np.flatnonzero(ok)
    if not len(picked):
        return pa.nulls(len(texts), arrow_type(column_type))
    values = _cast(texts.take(pa.array(picked)), column_type)
    if column_type is ColumnType.DOUBLE:
        # Ints go into a double column only while exact.
        as_float = values.to_numpy(zero_copy_only=False)
        inexact = (kinds[picked] == CODE_INT) & ~(np.abs(as_float) < MAX_EXACT_INT)
        if inexact.any():
            values = pc.if_else(pa.array(inexact), pa.scalar(None, pa.float64()), values)
    if len(picked) == len(texts):
        return values
    position = np.full(len(texts), -1, dtype=np.int64)
    position[picked] = np.arange(len(picked))
    return values.take(pa.array(position, mask=position < 0))


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
