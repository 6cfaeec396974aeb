"""Reproducibility across JSON round trips, and statistics correctness."""

from __future__ import annotations

import json
import random

import pytest

from emberlake.errors import SchemaInferenceError
from lake.schema_inference import (
    Attributes,
    InferenceState,
    PromotionPolicy,
    column_metadata,
    column_stats_json,
    infer_batch,
    snapshot,
)
from tests.lake.schema_inference.randomdata import Pairs, attributes, random_batches

POLICY = PromotionPolicy(max_columns=16, min_rows=5, min_batches=2, type_noise_fraction=0.05)


def _run(state: InferenceState, batches: list[Pairs], first_ts: int) -> list[list[str]]:
    decided = []
    for i, pairs in enumerate(batches):
        result = infer_batch(state, POLICY, {"record": attributes(pairs)}, first_ts + i)
        decided.append([f"{c.name}:{c.type}:{c.active}" for c in result.decisions.columns])
    return decided


def test_same_data_same_decisions_across_a_json_round_trip() -> None:
    batches = random_batches(seed=5, batches=16, rows=120)
    whole = InferenceState()
    decided_whole = _run(whole, batches, 0)

    first = InferenceState()
    decided_split = _run(first, batches[:7], 0)
    restored = InferenceState.from_json(first.to_json())
    assert restored.to_json() == first.to_json()
    decided_split += _run(restored, batches[7:], 7)

    assert decided_split == decided_whole
    assert restored.to_json() == whole.to_json()
    assert column_stats_json(restored) == column_stats_json(whole)
    assert any("__" in name for name in whole.columns)  # the data did exercise type changes


def test_attribute_order_within_rows_does_not_matter() -> None:
    batches = random_batches(seed=9, batches=8, rows=100)
    rng = random.Random(1)
    shuffled: list[Pairs] = []
    for keys_per_row, values_per_row in batches:
        rows = []
        for keys, values in zip(keys_per_row, values_per_row, strict=True):
            pairs = list(zip(keys, values, strict=True))
            # Keep repeated keys in their order (last one wins); shuffle the rest.
            seen = {k for k in keys if keys.count(k) > 1}
            movable = [p for p in pairs if p[0] not in seen]
            rng.shuffle(movable)
            pairs = movable + [p for p in pairs if p[0] in seen]
            rows.append(([k for k, _ in pairs], [v for _, v in pairs]))
        shuffled.append(([r[0] for r in rows], [r[1] for r in rows]))
    a, b = InferenceState(), InferenceState()
    assert _run(a, batches, 0) == _run(b, shuffled, 0)
    assert a.to_json() == b.to_json()


def test_snapshot_is_independent() -> None:
    state = InferenceState()
    _run(state, random_batches(seed=2, batches=3, rows=50), 0)
    copy = snapshot(state)
    _run(state, random_batches(seed=3, batches=2, rows=50), 3)
    assert copy.to_json() != state.to_json()
    assert copy.rows == 150


def test_column_statistics() -> None:
    policy = PromotionPolicy(min_rows=5, min_batches=1)
    state = InferenceState()
    n = 0
    for b in range(5):
        keys, values = [], []
        for i in range(2_000):
            row_keys, row_values = ["order.id"], [("string", f"order-{n}")]
            n += 1
            if i % 10 < 7:  # present in 70% of rows
                row_keys.append("region")
                row_values.append(("string", ["eu", "us", "ap"][i % 3]))
            if i % 4 == 0:
                row_keys.append("region.code")
                row_values.append(("empty", None))  # empty values count as null
            keys.append(row_keys)
            values.append(row_values)
        infer_batch(state, policy, {"record": Attributes.from_pairs(keys, values)}, 1_000 + b)
    meta = column_metadata(state)["columns"]
    order = meta["attr_order_id"]
    assert abs(order["distinct"] / 10_000 - 1) < 0.05
    assert order["null_fraction"] == 0.0
    assert len(order["examples"]) == 5 and order["examples"][0] == "order-0"
    assert (order["first_seen_us"], order["last_seen_us"]) == (1_000, 1_004)
    region = meta["attr_region"]
    assert region["null_fraction"] == 0.3
    assert region["distinct"] == 3
    assert sorted(region["examples"]) == ["ap", "eu", "us"]
    assert region["observed_types"] == {"string": 7_000}
    assert "attr_region_code" not in meta  # only empty values: no type, not promoted
    assert meta["attr_order_id"]["source"] == "attribute order.id"
    # Compact and strict JSON.
    text = column_stats_json(state)
    assert len(text) < 2_000
    json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))


def test_unreadable_state_says_what_to_do() -> None:
    assert InferenceState.from_json(None).rows == 0
    for bad in ("{", '{"v": 99}', '{"v": 1}'):
        with pytest.raises(SchemaInferenceError, match="remove the table property"):
            InferenceState.from_json(bad)
