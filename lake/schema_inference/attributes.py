"""One batch's attributes of one scope, as flat arrays, and the ways to build them.

An :class:`Attributes` is exactly what the flattener puts into a ``map<string,string>`` column
(per-row offsets, keys, values rendered as text) plus one more array: the OTLP kind of each value.
Type inference needs nothing else: a typed value is recovered from its text by an Arrow cast (the
text rendering of ints, doubles and bools round-trips exactly), so promotion costs the flattener
one extra list append per attribute and the rest runs in Arrow and NumPy.

Three ways in:

- :meth:`Attributes.from_map`: the flattener's own map column plus a parallel list of kinds;
- :func:`extract`: one pass over OTLP ``KeyValue`` protos per row, producing the map too (use its
  :attr:`Attributes.map_array` as the map column, so the protos are walked once);
- :meth:`Attributes.from_pairs`: keys and ``(kind, value)`` pairs per row.

Within a row a repeated key keeps every value in the map; a typed column takes the last one
(and stays null if that one does not fit its type).

Per-resource attributes repeat over many rows: build them once per resource and :meth:`take`
them to the batch's rows; inference then works on the distinct rows only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cached_property
from typing import Any

import numpy as np
import pyarrow as pa

from lake.schema_inference.types import (
    CODE_ARRAY,
    CODE_BOOL,
    CODE_BYTES,
    CODE_DOUBLE,
    CODE_EMPTY,
    CODE_INT,
    CODE_KVLIST,
    CODE_STRING,
    KIND_CODE,
    KIND_ORDER,
    json_text,
    render_text,
)

MAP_TYPE = pa.map_(pa.string(), pa.string())


class Attributes:
    """Attribute keys, text values and kinds of one scope over the rows of one batch."""

    def __init__(
        self,
        offsets: np.ndarray,
        keys: pa.Array,
        texts: pa.Array,
        kinds: np.ndarray,
        row_index: np.ndarray | None = None,
    ) -> None:
        if not len(keys) == len(texts) == len(kinds) == int(offsets[-1]):
            raise ValueError("keys, texts and kinds must have one entry per attribute")
        #: Base row i's attributes are positions offsets[i]:offsets[i+1] (int64, starts at 0).
        self.offsets = offsets
        self.keys = keys
        self.texts = texts
        #: Kind code per attribute (index into ``types.KIND_ORDER``), int8.
        self.kinds = kinds
        #: Base row of each batch row, when base rows repeat (see :meth:`take`); else None.
        self.row_index = row_index
        self.base_rows = len(offsets) - 1
        self.n_rows = self.base_rows if row_index is None else len(row_index)

    # -- constructors -------------------------------------------------------------------------

    @classmethod
    def from_lists(
        cls,
        offsets: Sequence[int],
        keys: Sequence[str],
        texts: Sequence[str | None],
        kinds: Sequence[int | str] | np.ndarray | pa.Array,
    ) -> Attributes:
        """From flat Python lists; ``kinds`` as codes, kind names or protobuf oneof names."""
        return cls(
            np.asarray(offsets, dtype=np.int64),
            pa.array(keys, pa.string()),
            pa.array(texts, pa.string()),
            _kind_codes(kinds),
        )

    @classmethod
    def from_map(
        cls, column: pa.Array | pa.ChunkedArray, kinds: Sequence[int | str] | np.ndarray | pa.Array
    ) -> Attributes:
        """From a ``map<string,string>`` column and the kind of each entry, in entry order.

        ``kinds``: kind codes (``types.KIND_CODE``, e.g. from :func:`types.kind_code_of`) as a
        list, NumPy or Arrow integer array, or kind names / protobuf oneof names.
        """
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        offsets = column.offsets.to_numpy(zero_copy_only=False).astype(np.int64)
        start, end = int(offsets[0]), int(offsets[-1])
        keys = column.keys.slice(start, end - start)
        texts = column.items.slice(start, end - start)
        attrs = cls(offsets - start, keys, texts, _kind_codes(kinds))
        attrs.__dict__["map_array"] = column
        return attrs

    @classmethod
    def from_pairs(
        cls,
        keys_per_row: Sequence[Sequence[str]],
        values_per_row: Sequence[Sequence[tuple[str, Any]]],
    ) -> Attributes:
        """From keys and ``(kind, python value)`` pairs per row.

        Arrays and kvlists may be given as Python lists/dicts or as their JSON text, bytes as
        ``bytes`` or hex text.
        """
        offsets = [0]
        keys: list[str] = []
        texts: list[str | None] = []
        kinds: list[int] = []
        for row_keys, row_values in zip(keys_per_row, values_per_row, strict=True):
            if len(row_keys) != len(row_values):
                raise ValueError("each row needs as many values as keys")
            keys.extend(row_keys)
            for kind, value in row_values:
                kinds.append(KIND_CODE[kind])
                texts.append(render_text(KIND_ORDER[KIND_CODE[kind]], value))
            offsets.append(len(keys))
        return cls.from_lists(offsets, keys, texts, kinds)

    @classmethod
    def empty(cls, n_rows: int) -> Attributes:
        """No attributes on any of ``n_rows`` rows."""
        return cls.from_lists([0] * (n_rows + 1), [], [], [])

    def take(self, rows: Sequence[int] | np.ndarray | pa.Array) -> Attributes:
        """The attributes of the given rows, in that order (rows may repeat).

        Build per-resource or per-scope attributes once, then expand them to the batch's rows
        with the row index the flattener uses for its resource columns. Nothing is copied:
        inference works on the distinct rows and expands each typed column once.
        """
        if isinstance(rows, pa.Array | pa.ChunkedArray):
            rows = rows.to_numpy(zero_copy_only=False)
        index = np.asarray(rows, dtype=np.int64)
        if self.row_index is not None:
            index = self.row_index[index]
        return Attributes(self.offsets, self.keys, self.texts, self.kinds, index)

    def expand(self, base_column: pa.Array) -> pa.Array:
        """A column over the base rows, as a column over the batch's rows."""
        if self.row_index is None:
            return base_column
        return base_column.take(pa.array(self.row_index))

    # -- derived views ------------------------------------------------------------------------

    @cached_property
    def map_array(self) -> pa.MapArray:
        """The attributes as a ``map<string,string>`` column (the lake's map contract)."""
        base = pa.MapArray.from_arrays(
            pa.array(self.offsets, pa.int32()), self.keys, self.texts, type=MAP_TYPE
        )
        return self.expand(base)

    @cached_property
    def row_of(self) -> np.ndarray:
        """Base row of every attribute."""
        counts = np.diff(self.offsets)
        return np.repeat(np.arange(self.base_rows, dtype=np.int64), counts)

    @cached_property
    def multiplicity(self) -> np.ndarray:
        """How many batch rows each base row stands for."""
        if self.row_index is None:
            return np.ones(self.base_rows, dtype=np.int64)
        return np.bincount(self.row_index, minlength=self.base_rows)

    @cached_property
    def key_groups(self) -> dict[str, np.ndarray]:
        """Attribute positions of each distinct key, ascending."""
        if len(self.keys) == 0:
            return {}
        encoded = self.keys.dictionary_encode()
        names = encoded.dictionary.to_pylist()
        codes = encoded.indices.to_numpy(zero_copy_only=False)
        if len(names) <= np.iinfo(np.int16).max:
            codes = codes.astype(np.int16)  # NumPy sorts 16-bit ints stably by radix: O(n)
        order = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
        return {
            name: order[bounds[i] : bounds[i + 1]]
            for i, name in enumerate(names)
            if bounds[i + 1] > bounds[i]
        }

    def kind_counts(self) -> dict[str, dict[int, int]]:
        """For every key in the batch, how many values of each kind code it had."""
        kinds = self.kinds
        weights = None if self.row_index is None else self.multiplicity[self.row_of]
        out: dict[str, dict[int, int]] = {}
        for key, positions in self.key_groups.items():
            ks = kinds[positions]
            first = int(ks[0])
            if (ks == first).all():
                total = len(ks) if weights is None else int(weights[positions].sum())
                if total:
                    out[key] = {first: total}
                continue
            w = None if weights is None else weights[positions]
            counts = np.bincount(ks, weights=w)
            found = {code: int(n) for code, n in enumerate(counts.tolist()) if n}
            if found:
                out[key] = found
        return out


def _kind_codes(kinds: Sequence[int | str] | np.ndarray | pa.Array) -> np.ndarray:
    if isinstance(kinds, pa.Array | pa.ChunkedArray):
        if pa.types.is_integer(kinds.type):
            return kinds.to_numpy(zero_copy_only=False).astype(np.int8, copy=False)
        kinds = kinds.to_pylist()
    if isinstance(kinds, np.ndarray):
        return kinds.astype(np.int8, copy=False)
    if len(kinds) and isinstance(kinds[0], str):
        code = KIND_CODE
        return np.fromiter((code[k] for k in kinds), dtype=np.int8, count=len(kinds))
    return np.asarray(kinds, dtype=np.int8)


def _any_to_python(value: Any) -> Any:
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [_any_to_python(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _any_to_python(kv.value) for kv in value.kvlist_value.values}
    if which == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, which)


def extract(rows: Iterable[Iterable[Any]], repeats: Sequence[int] | None = None) -> Attributes:
    """One pass over OTLP ``KeyValue`` lists, one list per row.

    ``repeats[i]`` (optional) says how many consecutive rows share list ``i``: pass each
    resource's attributes once with its row count instead of once per row.
    """
    keys: list[str] = []
    texts: list[str | None] = []
    kinds: list[int] = []
    offsets = [0]
    add_key = keys.append
    add_text = texts.append
    add_kind = kinds.append
    for kvs in rows:
        for kv in kvs:
            add_key(kv.key)
            value = kv.value
            which = value.WhichOneof("value")
            if which == "string_value":
                add_text(value.string_value)
                add_kind(CODE_STRING)
            elif which == "int_value":
                add_text(str(value.int_value))
                add_kind(CODE_INT)
            elif which == "double_value":
                add_text(str(value.double_value))
                add_kind(CODE_DOUBLE)
            elif which == "bool_value":
                add_text(str(value.bool_value))
                add_kind(CODE_BOOL)
            elif which == "bytes_value":
                add_text(value.bytes_value.hex())
                add_kind(CODE_BYTES)
            elif which == "array_value":
                add_text(json_text(_any_to_python(value)))
                add_kind(CODE_ARRAY)
            elif which == "kvlist_value":
                add_text(json_text(_any_to_python(value)))
                add_kind(CODE_KVLIST)
            else:
                add_text(None)
                add_kind(CODE_EMPTY)
        offsets.append(len(keys))
    attrs = Attributes.from_lists(offsets, keys, texts, kinds)
    if repeats is None:
        return attrs
    if len(repeats) != attrs.n_rows:
        raise ValueError("repeats needs one count per attribute list")
    return attrs.take(np.repeat(np.arange(attrs.n_rows), np.asarray(repeats, dtype=np.int64)))
