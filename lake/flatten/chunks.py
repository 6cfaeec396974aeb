"""Columns filled a scope at a time, as NumPy chunks, for the column-wise flatteners.

A repeated numeric field of a merged-message mirror (see :mod:`lake.flatten.wire`) converts to
NumPy in C (the upb container implements ``__array__``): about ten times cheaper than
extending a Python list and converting that list to Arrow later, which costs a Python integer
per value twice. Interned ids (:class:`~lake.flatten.common.LeafTable` lookups) are collected
with ``np.fromiter`` for the same reason. Each column is a list of chunks, one per scope, so
``Columns.add`` rolls a malformed request back by truncating the list like any row list.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import repeat
from operator import attrgetter
from typing import Any

import numpy as np
import pyarrow as pa

from lake.flatten.common import AttributeColumn

#: A column as chunks, one per scope (or per request).
Chunks = list[np.ndarray]


class _PerRecord:
    """Stands for the merged columns of a request that is not canonically encoded: each of
    its columns is :data:`UNALIGNED`, so every row's value is read from its own message."""

    def __getattr__(self, name: str) -> Any:
        return UNALIGNED


#: A column whose values cannot be matched to rows by position.
UNALIGNED: Any = object()
PER_RECORD: Any = _PerRecord()


def column_chunk(values: Any, dtype: Any, rows: Sequence[Any], name: str) -> np.ndarray:
    """One scope's values of the merged column ``values`` (field ``name`` of the messages in
    ``rows``): the column itself when every row set the field (a canonical encoding writes a
    set field once), zeros when none did, else every row's field read from its message."""
    count = len(rows)
    if values is not UNALIGNED:
        if len(values) == count:
            return np.array(values, dtype)
        if not len(values):
            return np.zeros(count, dtype)
    return np.fromiter(map(attrgetter(name), rows), dtype, count)


def column_values(values: Any, default: Any, rows: Sequence[Any], name: str) -> Iterable[Any]:
    """Like :func:`column_chunk`, for a column kept as a Python list (strings, bytes)."""
    count = len(rows)
    if values is not UNALIGNED:
        if len(values) == count:
            return values
        if not len(values):
            return repeat(default, count)
    return map(attrgetter(name), rows)


def joined(chunks: Chunks, dtype: Any) -> np.ndarray:
    """The chunks as one array (empty when there are none)."""
    if not chunks:
        return np.empty(0, dtype)
    return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)


class AttributeChunks(AttributeColumn):
    """An attribute map column filled a scope at a time: the ids of the scope's ``KeyValue``
    leaves, all rows' in one flat run, and each row's entry count."""

    __slots__ = ("id_chunks", "count_chunks")

    def __init__(self) -> None:
        super().__init__()
        self.id_chunks: Chunks = []
        self.count_chunks: Chunks = []

    def add_rows(self, items: Sequence[bytes], counts: np.ndarray) -> None:
        """Append rows from the bytes of all their ``KeyValue`` messages (row after row) and
        the number each row has."""
        self.id_chunks.append(np.fromiter(map(self.__getitem__, items), np.int32, len(items)))
        self.count_chunks.append(counts)

    def mark(self) -> tuple[int, int]:
        return len(self.id_chunks), len(self.count_chunks)

    def rollback(self, mark: tuple[int, int]) -> None:
        del self.id_chunks[mark[0] :], self.count_chunks[mark[1] :]
        self._rollbacks += 1

    def arrays(self) -> tuple[pa.Array, pa.Array]:
        version = (len(self.id_chunks), len(self.count_chunks), self._rollbacks)
        if self._arrays is None or self._arrays[0] != version:
            counts = joined(self.count_chunks, np.int32)
            offsets = np.zeros(len(counts) + 1, np.int32)
            np.cumsum(counts, out=offsets[1:])
            self._arrays = (version, pa.array(joined(self.id_chunks, np.int32)), pa.array(offsets))
        return self._arrays[1], self._arrays[2]
