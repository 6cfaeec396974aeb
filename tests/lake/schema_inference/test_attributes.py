"""Building a batch's attributes: from protos, from (kind, value) pairs, from a map column."""

from __future__ import annotations

import pyarrow as pa
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    KeyValue,
    KeyValueList,
)

from lake.schema_inference.attributes import Attributes
from lake.schema_inference.keyvalues import extract
from lake.schema_inference.types import KIND_CODE, kind_code_of


def _kv(key: str, **value: object) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(**value))


ROWS = [
    [
        _kv("s", string_value="x"),
        _kv("i", int_value=-7),
        _kv("d", double_value=0.5),
        _kv("b", bool_value=True),
    ],
    [],
    [
        _kv("y", bytes_value=b"\x00\xab"),
        _kv(
            "a",
            array_value=ArrayValue(values=[AnyValue(int_value=1), AnyValue(string_value="two")]),
        ),
        _kv(
            "k",
            kvlist_value=KeyValueList(values=[_kv("n", double_value=1.5)]),
        ),
        KeyValue(key="e"),
    ],
]
PAIRS = (
    [["s", "i", "d", "b"], [], ["y", "a", "k", "e"]],
    [
        [("string", "x"), ("int", -7), ("double", 0.5), ("bool", True)],
        [],
        [("bytes", b"\x00\xab"), ("array", [1, "two"]), ("kvlist", {"n": 1.5}), ("empty", None)],
    ],
)
EXPECTED_MAP = [
    [("s", "x"), ("i", "-7"), ("d", "0.5"), ("b", "True")],
    [],
    [("y", "00ab"), ("a", '[1,"two"]'), ("k", '{"n":1.5}'), ("e", None)],
]
EXPECTED_KINDS = ["string", "int", "double", "bool", "bytes", "array", "kvlist", "empty"]


def test_extract_from_protos() -> None:
    attrs = extract(ROWS)
    assert attrs.n_rows == 3
    assert attrs.map_array.to_pylist() == EXPECTED_MAP
    assert attrs.kinds.tolist() == [KIND_CODE[k] for k in EXPECTED_KINDS]


def test_pairs_give_the_same_as_protos() -> None:
    attrs = Attributes.from_pairs(*PAIRS)
    assert attrs.map_array.to_pylist() == EXPECTED_MAP
    assert attrs.kinds.tolist() == extract(ROWS).kinds.tolist()


def test_from_a_sliced_map_column_with_oneof_names() -> None:
    full = extract([[_kv("z", int_value=1)], *ROWS])
    column = full.map_array.slice(1)
    kinds = [kv.value.WhichOneof("value") or "" for row in ROWS for kv in row]
    attrs = Attributes.from_map(column, kinds)
    assert attrs.n_rows == 3
    assert attrs.keys.to_pylist() == [k for row in EXPECTED_MAP for k, _ in row]
    assert attrs.kinds.tolist() == [kind_code_of(kv.value) for row in ROWS for kv in row]
    assert attrs.map_array is column


def test_kind_counts_and_groups() -> None:
    attrs = Attributes.from_pairs(
        [["a", "b"], ["a"], ["a", "a"]],
        [[("int", 1), ("string", "x")], [("double", 2.0)], [("int", 3), ("int", 4)]],
    )
    assert attrs.key_groups["a"].tolist() == [0, 2, 3, 4]
    assert attrs.kind_counts() == {
        "a": {KIND_CODE["int"]: 3, KIND_CODE["double"]: 1},
        "b": {KIND_CODE["string"]: 1},
    }


def test_take_repeats_rows_lazily() -> None:
    per_resource = Attributes.from_pairs(
        [["host", "pid"], ["host"]], [[("string", "h1"), ("int", 5)], [("string", "h2")]]
    )
    rows = per_resource.take(pa.array([1, 0, 0, 1, 1]))
    assert rows.n_rows == 5 and rows.base_rows == 2
    assert rows.map_array.to_pylist() == [
        [("host", "h2")],
        [("host", "h1"), ("pid", "5")],
        [("host", "h1"), ("pid", "5")],
        [("host", "h2")],
        [("host", "h2")],
    ]
    assert rows.kind_counts() == {
        "host": {KIND_CODE["string"]: 5},
        "pid": {KIND_CODE["int"]: 2},
    }
    again = rows.take([0, 1])
    assert again.map_array.to_pylist() == rows.map_array.to_pylist()[:2]


def test_extract_with_repeats() -> None:
    attrs = extract([ROWS[0], ROWS[2]], repeats=[2, 1])
    assert attrs.n_rows == 3
    assert attrs.map_array.to_pylist() == [EXPECTED_MAP[0], EXPECTED_MAP[0], EXPECTED_MAP[2]]


def test_empty() -> None:
    attrs = Attributes.empty(4)
    assert attrs.n_rows == 4
    assert attrs.kind_counts() == {}
    assert attrs.map_array.to_pylist() == [[], [], [], []]
