"""One pass over OTLP ``KeyValue`` protos into ``Attributes``.

The slow but self-contained way in, for callers that hold protos rather than the flattener's
interned leaves: it reads each value once, renders it per the lake's map contract (so its
``map_array`` can serve as the map column) and records its kind.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from lake.schema_inference.attributes import Attributes
from lake.schema_inference.types import (
    CODE_ARRAY,
    CODE_BOOL,
    CODE_BYTES,
    CODE_DOUBLE,
    CODE_EMPTY,
    CODE_INT,
    CODE_KVLIST,
    CODE_STRING,
    json_text,
)


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
