"""The widening table, kind mapping, lossless acceptance and text rendering."""

from __future__ import annotations

import itertools

import pytest

from lake.schema_inference.types import (
    KIND_CODE,
    ColumnType,
    Kind,
    accepts,
    column_type_of,
    promote,
    render_text,
)

B, L, D, S = ColumnType.BOOLEAN, ColumnType.LONG, ColumnType.DOUBLE, ColumnType.STRING


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (None, L, L),
        (B, B, B),
        (L, L, L),
        (L, D, D),
        (B, L, S),
        (B, D, S),
        (L, S, S),
        (D, S, S),
        (B, S, S),
    ],
)
def test_widening_table(old: ColumnType | None, new: ColumnType, expected: ColumnType) -> None:
    assert promote(old, new) is expected
    if old is not None:
        assert promote(new, old) is expected  # symmetric


def test_promote_is_associative_and_never_narrows() -> None:
    order = {B: 0, L: 1, D: 2, S: 3}
    for a, b, c in itertools.product(ColumnType, repeat=3):
        assert promote(promote(a, b), c) is promote(a, promote(b, c))
        widened = promote(a, b)
        assert promote(widened, a) is widened and promote(widened, b) is widened
        assert order[widened] >= max(order[a], order[b]) or widened is S


def test_kinds_map_to_column_types() -> None:
    assert column_type_of("int") is L  # even small ints start as long
    assert column_type_of("double") is D
    assert column_type_of("bool") is B
    for kind in ("string", "bytes", "array", "kvlist"):
        assert column_type_of(kind) is S
    assert column_type_of(Kind.EMPTY) is None


def test_accepts_is_lossless() -> None:
    assert accepts(D, "int", 2**53 - 1)
    assert not accepts(D, "int", 2**53 + 1)  # would round
    assert not accepts(L, "double", 3.0)
    assert not accepts(B, "int", 1)
    assert accepts(S, "kvlist") and accepts(S, "bool")
    assert not accepts(S, "empty")


def test_render_text_follows_the_map_contract() -> None:
    assert render_text("int", 42) == "42"
    assert render_text("double", 0.1) == "0.1"
    assert render_text("bool", True) == "True"
    assert render_text("bytes", b"\x01\xff") == "01ff"
    assert render_text("array", [1, "a", b"\x02"]) == '[1,"a","02"]'
    assert render_text("kvlist", {"a": {"b": 1.5}}) == '{"a":{"b":1.5}}'
    assert render_text("array", "[1]") == "[1]"  # already JSON
    assert render_text("empty", None) is None


def test_kind_codes_are_a_stable_contract() -> None:
    # Flatteners write these codes into kinds columns; changing them would mistype stored data.
    assert [KIND_CODE[k] for k in ("string", "bool", "int", "double")] == [0, 1, 2, 3]
    assert [KIND_CODE[k] for k in ("bytes", "array", "kvlist", "empty")] == [4, 5, 6, 7]
    assert KIND_CODE["int_value"] == KIND_CODE["int"] and KIND_CODE[""] == KIND_CODE["empty"]
