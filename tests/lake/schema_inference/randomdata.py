"""Seeded random attribute batches with drifting types, bursts, duplicates and odd values."""

from __future__ import annotations

import math
import random
from typing import Any

from lake.schema_inference.attributes import Attributes

Pairs = tuple[list[list[str]], list[list[tuple[str, Any]]]]

NAMES = (
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliett",
    "kilo",
    "lima",
)
KINDS = ("string", "int", "double", "bool", "bytes", "array", "kvlist", "empty")


def random_value(rng: random.Random, kind: str) -> Any:
    if kind == "string":
        return rng.choice(["GET", "ok", "", "ünïcode ✓", "a" * 100, str(rng.randint(0, 50))])
    if kind == "int":
        return rng.choice([0, -1, rng.randint(-1000, 1000), 2**53 + 1, -(2**63), 2**63 - 1])
    if kind == "double":
        return rng.choice([0.5, -0.0, rng.uniform(-1e6, 1e6), 1e-300, math.inf, math.nan, 3.0])
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "bytes":
        return rng.randbytes(rng.randint(0, 6))
    if kind == "array":
        return [rng.randint(0, 3), "x", 1.5][: rng.randint(0, 3)]
    if kind == "kvlist":
        return {"k": rng.randint(0, 3), "nested": {"b": True}}
    return None


def random_batch(rng: random.Random, rows: int, batch: int, n_keys: int = len(NAMES)) -> Pairs:
    """Rows over a pool of keys; each key has a main kind that drifts with the batch number."""
    keys_per_row: list[list[str]] = []
    values_per_row: list[list[tuple[str, Any]]] = []
    for _ in range(rows):
        keys: list[str] = []
        values: list[tuple[str, Any]] = []
        for k in range(n_keys):
            if rng.random() < 0.3:
                continue  # absent in this row
            main = KINDS[(k + batch // 3) % len(KINDS)] if k % 3 else KINDS[k % len(KINDS)]
            kind = main if rng.random() < 0.97 else rng.choice(KINDS)
            key = f"key.{NAMES[k]}" if k != 5 else "Key_Foxtrot"
            keys.append(key)
            values.append((kind, random_value(rng, kind)))
            if rng.random() < 0.02:  # a repeated key within the row
                keys.append(key)
                values.append(("int", rng.randint(0, 9)))
        if rng.random() < 0.05:  # a one-off burst key
            keys.append(f"burst.{rng.randint(0, 10_000)}.x")
            values.append(("string", "b"))
        keys_per_row.append(keys)
        values_per_row.append(values)
    return keys_per_row, values_per_row


def random_batches(seed: int, batches: int, rows: int) -> list[Pairs]:
    rng = random.Random(seed)
    return [random_batch(rng, rows, b) for b in range(batches)]


def attributes(pairs: Pairs) -> Attributes:
    return Attributes.from_pairs(*pairs)
