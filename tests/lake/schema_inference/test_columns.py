"""Typed columns: exact conversions, and no value lost over random data."""

from __future__ import annotations

import math
from typing import Any

import pyarrow as pa
import pytest

from lake.schema_inference import (
    Attributes,
    InferenceState,
    PromotionPolicy,
    infer_batch,
    promoted_fields,
)
from lake.schema_inference.columns import typed_values
from lake.schema_inference.types import MAX_EXACT_INT, ColumnType, render_text
from tests.lake.schema_inference.randomdata import attributes, random_batches

MISSING = object()


def reference(kind: str, value: Any, column_type: ColumnType) -> Any:
    """What the documented conversion rules say a column holds for one value."""
    if kind == "empty":
        return MISSING
    if column_type is ColumnType.STRING:
        return render_text(kind, value)
    if column_type is ColumnType.BOOLEAN:
        return value if kind == "bool" else MISSING
    if column_type is ColumnType.LONG:
        return value if kind == "int" else MISSING
    if kind == "double":
        return value
    if kind == "int" and abs(value) < MAX_EXACT_INT:
        return float(value)
    return MISSING


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b and type(a) is type(b)


@pytest.mark.parametrize("column_type", list(ColumnType))
def test_typed_values_match_the_reference(column_type: ColumnType) -> None:
    values = [
        ("int", 5),
        ("int", 2**53 + 1),
        ("double", 2.5),
        ("double", math.nan),
        ("bool", False),
        ("string", "7"),
        ("bytes", b"\x01"),
        ("array", [1, 2]),
        ("empty", None),
    ]
    attrs = Attributes.from_pairs([["k"]] * len(values), [[v] for v in values])
    array, unconverted, _ = typed_values(attrs, "k", column_type)
    expected = [reference(kind, value, column_type) for kind, value in values]
    got = array.to_pylist()
    for want, have in zip(expected, got, strict=True):
        assert (have is None) if want is MISSING else _same(want, have)
    non_empty_missing = sum(
        1
        for (kind, _), want in zip(values, expected, strict=True)
        if want is MISSING and kind != "empty"
    )
    assert unconverted == non_empty_missing


def test_repeated_key_in_a_row_keeps_the_last_value() -> None:
    attrs = Attributes.from_pairs(
        [["k", "k"], ["k"], []], [[("int", 1), ("int", 2)], [("int", 3)], []]
    )
    array, unconverted, _ = typed_values(attrs, "k", ColumnType.LONG)
    assert array.to_pylist() == [2, 3, None]
    assert unconverted == 1  # the first value of row 0 is only in the map
    assert attrs.map_array.to_pylist()[0] == [("k", "1"), ("k", "2")]


def test_malformed_text_stays_out_of_the_typed_column() -> None:
    # A flattener handing over a kind that disagrees with the text must not fail the batch.
    column = pa.MapArray.from_arrays(
        pa.array([0, 1, 2], pa.int32()), pa.array(["k", "k"]), pa.array(["12", "twelve"])
    )
    attrs = Attributes.from_map(column, ["int", "int"])
    array, unconverted, _ = typed_values(attrs, "k", ColumnType.LONG)
    assert array.to_pylist() == [12, None]
    assert unconverted == 1


def test_no_value_is_lost_over_random_batches() -> None:
    """Every input value is in the map; where its key's active column takes it, it is there."""
    policy = PromotionPolicy(max_columns=16, min_rows=5, min_batches=1, type_noise_fraction=0.05)
    state = InferenceState()
    checked_typed = 0
    for b, pairs in enumerate(random_batches(seed=11, batches=24, rows=150)):
        attrs = attributes(pairs)
        result = infer_batch(state, policy, {"record": attrs}, 1_000 + b)
        active = {c.key: c for c in result.decisions.columns if c.active}
        columns = {name: array.to_pylist() for name, array in result.columns.items()}
        assert all(len(values) == attrs.n_rows for values in columns.values())
        for c in result.decisions.columns:
            if not c.active:
                assert all(v is None for v in columns[c.name])  # superseded: no new data
        the_map = attrs.map_array.to_pylist()
        keys_per_row, values_per_row = pairs
        for row, (keys, values) in enumerate(zip(keys_per_row, values_per_row, strict=True)):
            rendered = [
                (k, render_text(kind, v)) for k, (kind, v) in zip(keys, values, strict=True)
            ]
            assert the_map[row] == rendered  # the map keeps every attribute, in order
            last: dict[str, tuple[str, Any]] = dict(zip(keys, values, strict=True))
            for key, column in active.items():
                have = columns[column.name][row]
                if key not in last:
                    assert have is None
                    continue
                want = reference(*last[key], column.type)
                if want is MISSING:
                    assert have is None
                else:
                    assert _same(want, have), (key, last[key], column.type, have)
                    checked_typed += 1
    assert checked_typed > 5_000
    # Types drifted, so some keys have siblings; the cap held throughout.
    assert any(name.endswith(("__double", "__str")) for name in state.columns)
    assert len(state.columns) <= policy.max_columns


def test_promoted_fields_carry_docs() -> None:
    state = InferenceState()
    batch = Attributes.from_pairs([["http.route", "n"]] * 10, [[("string", "/"), ("int", 1)]] * 10)
    result = infer_batch(state, PromotionPolicy(min_rows=5, min_batches=1), {"record": batch}, 1)
    fields = promoted_fields(result.decisions)
    assert [(f.name, f.type, f.nullable, f.metadata[b"doc"]) for f in fields] == [
        ("attr_http_route", pa.string(), True, b"attribute http.route"),
        ("attr_n", pa.int64(), True, b"attribute n"),
    ]
    table = pa.Table.from_arrays(list(result.columns.values()), schema=pa.schema(fields))
    assert table.num_rows == 10


def _interned(pairs: Any) -> Attributes:
    """The flattener's form of a batch: distinct (key, text, kind) entries plus ids."""
    plain = attributes(pairs)
    entries: dict[tuple[str, str | None, int], int] = {}
    ids = []
    for key, text, kind in zip(
        plain.keys.to_pylist(), plain.texts.to_pylist(), plain.kinds.tolist(), strict=True
    ):
        ids.append(entries.setdefault((key, text, kind), len(entries)))
    keys, texts, kinds = zip(*entries, strict=True)
    return Attributes.from_interned(plain.offsets, ids, list(keys), list(texts), list(kinds))


def test_interned_input_gives_the_same_columns_and_state() -> None:
    policy = PromotionPolicy(max_columns=16, min_rows=5, min_batches=1, type_noise_fraction=0.05)
    plain_state, interned_state = InferenceState(), InferenceState()
    for b, pairs in enumerate(random_batches(seed=21, batches=10, rows=120)):
        interned = _interned(pairs)
        assert interned.map_array.to_pylist() == attributes(pairs).map_array.to_pylist()
        a = infer_batch(plain_state, policy, {"record": attributes(pairs)}, b)
        b_ = infer_batch(interned_state, policy, {"record": interned}, b)
        assert a.decisions == b_.decisions
        assert list(a.columns) == list(b_.columns)
        for name, column in a.columns.items():
            pairs_ = zip(column.to_pylist(), b_.columns[name].to_pylist(), strict=True)
            assert all(x is y or _same(x, y) for x, y in pairs_), name

    def normalised(state: InferenceState) -> dict[str, Any]:
        data = state.to_dict()
        for column in data["columns"]:
            column["stats"]["examples"] = sorted(map(repr, column["stats"]["examples"]))
        return data

    assert normalised(plain_state) == normalised(interned_state)


def test_entry_table_keeps_the_last_value_of_a_repeated_key() -> None:
    attrs = Attributes.from_interned(
        [0, 3, 4], [0, 1, 0, 2], ["a", "b", "a"], ["1", "x", "9"], ["int", "string", "int"]
    )
    # Row 0: a=1, b=x, a=1 again; row 1: a=9.
    assert attrs.entry_table(["a", "b", "zzz"]).tolist() == [[0, 1, -1], [2, -1, -1]]
    dup = Attributes.from_interned([0, 2], [2, 0], ["a", "b", "a"], ["1", "x", "9"], [2, 0, 2])
    assert dup.entry_table(["a"]).tolist() == [[0]]  # a=9 then a=1: the last one wins
