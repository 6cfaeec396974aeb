"""One batch's attributes of one scope, as flat arrays, and the ways to build them.

An :class:`Attributes` is exactly what the flattener puts into a ``map<string,string>`` column
(per-row offsets, keys, values rendered as text) plus one more array: the OTLP kind of each value.
Type inference needs nothing else: a typed value is recovered from its text by an Arrow cast (the
text rendering of ints, doubles and bools round-trips exactly), so promotion costs the flattener
one kind per distinct leaf and the rest runs in Arrow and NumPy.

Four ways in, fastest first:

- :meth:`Attributes.from_interned`: the flattener's interned form, an entry table (key, text,
  kind of each distinct leaf) plus the entry id of every attribute: each distinct value is
  converted once, and distinct counts come from the entries without hashing the column;
- :meth:`Attributes.from_map`: the flattener's own map column plus a parallel list of kinds;
- :func:`lake.schema_inference.keyvalues.extract`: one pass over OTLP ``KeyValue`` protos per
  row, producing the map too (use its :attr:`Attributes.map_array` as the map column, so the
  protos are walked once);
- :meth:`Attributes.from_pairs`: keys and ``(kind, value)`` pairs per row.

Within a row a repeated key keeps every value in the map; a typed column takes the last one
(and stays null if that one does not fit its type).

Per-resource attributes repeat over many rows: build them once per resource and :meth:`take`
them to the batch's rows; inference then works on the distinct rows only.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any, cast

import numpy as np
import pyarrow as pa

from lake.schema_inference.types import (
    CODE_EMPTY,
    CODE_STRING,
    KIND_CODE,
    KIND_ORDER,
    render_text,
)

MAP_TYPE = pa.map_(pa.string(), pa.string())


class Attributes:
    """Attribute keys, text values and kinds of one scope over the rows of one batch.

    Values live in an *entry table* (key, text, kind per entry); each attribute names its entry
    by ``ids``, or is its own entry when ``ids`` is None. The flattener interns repeated leaves
    (the same ``http.method=GET`` on every span), so handing over its entry table and ids lets
    inference parse each distinct value once.
    """

    def __init__(
        self,
        offsets: np.ndarray,
        entry_keys: pa.Array,
        entry_texts: pa.Array,
        entry_kinds: np.ndarray,
        ids: np.ndarray | None = None,
        row_index: np.ndarray | None = None,
    ) -> None:
        if not len(entry_keys) == len(entry_texts) == len(entry_kinds):
            raise ValueError("entry keys, texts and kinds must have the same length")
        attributes = len(entry_keys) if ids is None else len(ids)
        if attributes != int(offsets[-1]):
            raise ValueError("offsets must end at the number of attributes")
        #: Base row i's attributes are positions offsets[i]:offsets[i+1] (int64, starts at 0).
        self.offsets = offsets
        self.entry_keys = entry_keys
        self.entry_texts = entry_texts
        #: Kind code per entry (index into ``types.KIND_ORDER``), int8.
        self.entry_kinds = entry_kinds
        #: Entry of every attribute (int64), or None when each attribute is its own entry.
        self.ids = ids
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
    def from_interned(
        cls,
        offsets: Sequence[int] | np.ndarray | pa.Array,
        ids: Sequence[int] | np.ndarray | pa.Array,
        keys: Sequence[str] | pa.Array,
        texts: Sequence[str | None] | pa.Array,
        kinds: Sequence[int | str] | np.ndarray | pa.Array,
    ) -> Attributes:
        """From an entry table (``keys``, ``texts``, ``kinds`` per distinct leaf) and the entry
        ``ids`` of every attribute, rows delimited by ``offsets``: the flattener's interned form.
        """
        return cls(
            _int64(offsets),
            keys if isinstance(keys, pa.Array) else pa.array(keys, pa.string()),
            texts if isinstance(texts, pa.Array) else pa.array(texts, pa.string()),
            _kind_codes(kinds),
            _int64(ids),
        )

    @classmethod
    def from_map(
        cls,
        column: pa.Array | pa.ChunkedArray,
        kinds: Sequence[int | str] | np.ndarray | pa.Array | None = None,
    ) -> Attributes:
        """From a ``map<string,string>`` column and the kind of each entry, in entry order.

        ``kinds``: kind codes (``types.KIND_CODE``, e.g. from :func:`types.kind_code_of`) as a
        list, NumPy or Arrow integer array, or kind names / protobuf oneof names. Without them
        every value counts as a string (a null value as empty): types are then never guessed
        from text, so a string "200" never becomes a number.
        """
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        offsets = column.offsets.to_numpy(zero_copy_only=False).astype(np.int64)
        start, end = int(offsets[0]), int(offsets[-1])
        keys = column.keys.slice(start, end - start)
        texts = column.items.slice(start, end - start)
        if kinds is None:
            missing = texts.is_null().to_numpy(zero_copy_only=False)
            codes = np.where(missing, CODE_EMPTY, CODE_STRING).astype(np.int8)
        else:
            codes = _kind_codes(kinds)
        attrs = cls(offsets - start, keys, texts, codes)
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
        return Attributes(
            self.offsets, self.entry_keys, self.entry_texts, self.entry_kinds, self.ids, index
        )

    def expand(self, base_column: pa.Array) -> pa.Array:
        """A column over the base rows, as a column over the batch's rows."""
        if self.row_index is None:
            return base_column
        return base_column.take(pa.array(self.row_index))

    # -- derived views ------------------------------------------------------------------------

    @cached_property
    def keys(self) -> pa.Array:
        """Key of every attribute."""
        return self._per_attribute(self.entry_keys)

    @cached_property
    def texts(self) -> pa.Array:
        """Text value of every attribute."""
        return self._per_attribute(self.entry_texts)

    @cached_property
    def kinds(self) -> np.ndarray:
        """Kind code of every attribute."""
        return self.entry_kinds if self.ids is None else self.entry_kinds[self.ids]

    def _per_attribute(self, entries: pa.Array) -> pa.Array:
        return entries if self.ids is None else entries.take(pa.array(self.ids))

    @cached_property
    def map_array(self) -> pa.MapArray:
        """The attributes as a ``map<string,string>`` column (the lake's map contract)."""
        base = pa.MapArray.from_arrays(
            pa.array(self.offsets, pa.int32()), self.keys, self.texts, type=MAP_TYPE
        )
        return self.expand(base)

    def map_kinds(self) -> np.ndarray:
        """Kind code of every entry of :attr:`map_array`, in order (row repeats expanded)."""
        if self.row_index is None:
            return self.kinds
        starts = self.offsets[:-1][self.row_index]
        sizes = np.diff(self.offsets)[self.row_index]
        ends = np.cumsum(sizes)
        positions = np.repeat(starts - (ends - sizes), sizes) + np.arange(
            int(ends[-1]) if len(ends) else 0
        )
        return self.kinds[positions]

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
    def _codes(self) -> tuple[list[str], np.ndarray]:
        """Distinct keys, and the key code of every attribute."""
        encoded = self.entry_keys.dictionary_encode()
        names = encoded.dictionary.to_pylist()
        codes = encoded.indices.to_numpy(zero_copy_only=False)
        if len(names) <= np.iinfo(np.int16).max:
            codes = codes.astype(np.int16)
        return names, codes if self.ids is None else codes[self.ids]

    @cached_property
    def key_groups(self) -> dict[str, np.ndarray]:
        """Attribute positions of each distinct key, ascending."""
        names, codes = self._codes
        order = np.argsort(codes, kind="stable")  # radix sort for 16-bit codes: O(n)
        bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
        return {
            name: order[bounds[i] : bounds[i + 1]]
            for i, name in enumerate(names)
            if bounds[i + 1] > bounds[i]
        }

    def entries_of(self, positions: np.ndarray) -> np.ndarray:
        """Entry of each attribute position."""
        return positions if self.ids is None else self.ids[positions]

    def entry_table(self, keys: Sequence[str]) -> np.ndarray:
        """Entry of each key's value in each base row (``base_rows x len(keys)``), -1 if none.

        A key repeated within a row gives its last value.
        """
        width = len(keys)
        table = np.full((self.base_rows, width), -1, dtype=np.int64)
        if not width or not int(self.offsets[-1]):
            return table
        names, codes = self._codes
        index = {name: i for i, name in enumerate(names)}
        column_of = np.full(len(names), -1, dtype=np.int64)
        for j, key in enumerate(keys):
            if key in index:
                column_of[index[key]] = j
        columns = column_of[codes]
        picked = np.flatnonzero(columns >= 0)
        cells = self.row_of[picked] * width + columns[picked]
        entries = self.entries_of(picked)
        flat = table.reshape(-1)
        flat[cells] = entries
        if np.count_nonzero(flat >= 0) != len(cells):
            # A key repeated within a row: keep the last occurrence explicitly.
            _, first_from_end = np.unique(cells[::-1], return_index=True)
            last = len(cells) - 1 - first_from_end
            flat[cells[last]] = entries[last]
        return table

    @cached_property
    def _kind_counts(self) -> dict[str, dict[int, int]]:
        names, codes = self._codes
        width = len(KIND_ORDER)
        weights = None if self.row_index is None else self.multiplicity[self.row_of]
        combined = codes.astype(np.int64) * width + self.kinds
        table = np.bincount(combined, weights=weights, minlength=len(names) * width)
        out: dict[str, dict[int, int]] = {}
        for i, counts in enumerate(table.reshape(len(names), width).tolist()):
            found = {code: int(n) for code, n in enumerate(counts) if n}
            if found:
                out[names[i]] = found
        return out

    def kind_counts(self) -> dict[str, dict[int, int]]:
        """For every key in the batch, how many values of each kind code it had."""
        return self._kind_counts if int(self.offsets[-1]) else {}


def _int64(values: Sequence[int] | np.ndarray | pa.Array) -> np.ndarray:
    if isinstance(values, pa.Array | pa.ChunkedArray):
        values = values.to_numpy(zero_copy_only=False)
    return np.asarray(values, dtype=np.int64)


def _kind_codes(kinds: Sequence[int | str] | np.ndarray | pa.Array) -> np.ndarray:
    if isinstance(kinds, pa.Array | pa.ChunkedArray):
        if pa.types.is_integer(kinds.type):
            return kinds.to_numpy(zero_copy_only=False).astype(np.int8, copy=False)
        kinds = kinds.to_pylist()
    if isinstance(kinds, np.ndarray):
        return kinds.astype(np.int8, copy=False)
    if len(kinds) and isinstance(kinds[0], str):
        code = KIND_CODE
        names = cast("Sequence[str]", kinds)
        return np.fromiter((code[k] for k in names), dtype=np.int8, count=len(names))
    return np.asarray(kinds, dtype=np.int8)
