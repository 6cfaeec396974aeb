"""Promotion decisions: thresholds, type changes (siblings), cap, unbounded keys, adoption."""

from __future__ import annotations

import random
import uuid
from typing import Any

from pyiceberg.schema import Schema
from pyiceberg.types import DoubleType, LongType, MapType, NestedField, StringType

from lake.schema_inference import (
    AddColumn,
    Attributes,
    InferenceState,
    PromotionPolicy,
    column_metadata,
    decide,
    infer_batch,
    observe,
)
from lake.schema_inference.types import ColumnType

EAGER = PromotionPolicy(min_rows=5, min_batches=1)


def rows_of(key: str, values: list[tuple[str, Any]]) -> Attributes:
    return Attributes.from_pairs([[key]] * len(values), [[v] for v in values])


def test_key_changing_type_int_then_double_then_string() -> None:
    state = InferenceState()
    ints = rows_of("http.status_code", [("int", 200 + i % 3) for i in range(100)])
    r1 = infer_batch(state, EAGER, {"record": ints}, 1)
    assert r1.changes == [
        AddColumn("attr_http_status_code", ColumnType.LONG, "attribute http.status_code")
    ]
    assert r1.columns["attr_http_status_code"].to_pylist()[:3] == [200, 201, 202]

    mixed = rows_of("http.status_code", [("double", 1.5)] * 60 + [("int", 7)] * 40)
    r2 = infer_batch(state, EAGER, {"record": mixed}, 2)
    assert [c.name for c in r2.changes] == ["attr_http_status_code__double"]
    assert r2.columns["attr_http_status_code"].null_count == 100  # superseded: no new values
    assert r2.columns["attr_http_status_code__double"].to_pylist() == [1.5] * 60 + [7.0] * 40

    strings = rows_of("http.status_code", [("string", "n/a")] * 100)
    r3 = infer_batch(state, EAGER, {"record": strings}, 3)
    assert [c.name for c in r3.changes] == ["attr_http_status_code__str"]
    assert r3.columns["attr_http_status_code__str"].to_pylist() == ["n/a"] * 100

    cols = {c.name: c for c in r3.decisions.columns}
    assert [c.active for c in cols.values()] == [False, False, True]
    assert [c.type for c in cols.values()] == [
        ColumnType.LONG,
        ColumnType.DOUBLE,
        ColumnType.STRING,
    ]
    meta = column_metadata(state)["columns"]
    assert meta["attr_http_status_code"]["superseded_by"] == "attr_http_status_code__double"
    assert meta["attr_http_status_code__double"]["superseded_by"] == "attr_http_status_code__str"
    assert meta["attr_http_status_code__str"]["observed_types"] == {
        "int": 140,
        "string": 100,
        "double": 60,
    }
    assert meta["attr_http_status_code__str"]["all_values_sql"] == (
        'COALESCE("attr_http_status_code__str", '
        'CAST("attr_http_status_code__double" AS VARCHAR), '
        'CAST("attr_http_status_code" AS VARCHAR))'
    )


def test_stray_values_do_not_widen_the_column() -> None:
    state = InferenceState()
    infer_batch(state, EAGER, {"record": rows_of("port", [("int", 80)] * 1000)}, 1)
    noisy = rows_of("port", [("int", 443)] * 95 + [("string", "unknown")] * 5)
    result = infer_batch(state, EAGER, {"record": noisy}, 2)
    assert result.changes == [] and list(result.columns) == ["attr_port"]
    assert result.columns["attr_port"].null_count == 5
    assert column_metadata(state)["columns"]["attr_port"]["values_only_in_map"] == 5


def test_thresholds_rows_batches_fraction() -> None:
    policy = PromotionPolicy(min_rows=20, min_batches=2, min_fraction=0.1)
    state = InferenceState()

    def batch(n_rows: int, rare_every: int) -> Attributes:
        keys = [["common"] + (["rare"] if i % rare_every == 0 else []) for i in range(n_rows)]
        values = [[("string", "x")] * len(k) for k in keys]
        return Attributes.from_pairs(keys, values)

    assert decide(observe(state, policy, {"record": batch(100, 20)}, 1), policy).columns == ()
    # Second batch: "common" qualifies; "rare" is in 5% of rows, under min_fraction.
    observe(state, policy, {"record": batch(100, 20)}, 2)
    assert [c.name for c in decide(state, policy).columns] == ["attr_common"]
    # A key that appears late is judged on the rows since it appeared.
    for ts in (3, 4):
        late = Attributes.from_pairs([["late"]] * 30, [[("bool", True)]] * 30)
        observe(state, policy, {"record": late}, ts)
    assert [c.name for c in decide(state, policy).columns] == ["attr_common", "attr_late"]


def test_burst_of_new_keys_needs_a_second_batch_and_respects_the_cap() -> None:
    policy = PromotionPolicy(max_columns=10, min_rows=5, min_batches=2)
    state = InferenceState()
    burst_keys = [f"burst.{name}" for name in ("a", "b", "c")] + [f"k{n:03d}x" for n in range(300)]
    burst = Attributes.from_pairs([burst_keys] * 10, [[("string", "v")] * len(burst_keys)] * 10)
    assert infer_batch(state, policy, {"record": burst}, 1).decisions.columns == ()
    quiet = Attributes.from_pairs([["steady"]] * 10, [[("int", 1)]] * 10)
    assert infer_batch(state, policy, {"record": quiet}, 2).decisions.columns == ()
    # The burst repeats: now keys qualify, but only up to the cap, in a deterministic order.
    result = infer_batch(state, policy, {"record": burst}, 3)
    names = [c.name for c in result.decisions.columns]
    assert len(names) == 10
    assert names[:3] == ["attr_burst_a", "attr_burst_b", "attr_burst_c"]
    assert names[3:] == [f"attr_k{n:03d}x" for n in range(7)]
    for ts in range(4, 8):
        result = infer_batch(state, policy, {"record": burst}, ts)
        assert len(result.decisions.columns) == 10


def test_widening_does_not_break_the_cap() -> None:
    policy = PromotionPolicy(max_columns=2, min_rows=5, min_batches=1)
    state = InferenceState()
    two = Attributes.from_pairs([["a", "b"]] * 10, [[("int", 1), ("int", 2)]] * 10)
    infer_batch(state, policy, {"record": two}, 1)
    doubles = Attributes.from_pairs([["a", "b"]] * 10, [[("double", 0.5), ("int", 3)]] * 10)
    result = infer_batch(state, policy, {"record": doubles}, 2)
    assert result.changes == [] and len(state.columns) == 2
    assert result.columns["attr_a"].null_count == 10  # the doubles are in the map only
    assert column_metadata(state)["columns"]["attr_a"]["values_only_in_map"] == 10


def test_high_cardinality_uuid_keys_are_not_promoted() -> None:
    policy = PromotionPolicy(max_columns=8, min_rows=5, min_batches=1)
    state = InferenceState()
    rng = random.Random(3)
    all_keys = [f"user.{uuid.UUID(int=rng.getrandbits(128))}" for _ in range(10_000)]
    for b in range(10):
        chunk = all_keys[b * 1000 : (b + 1) * 1000]
        keys = [["http.route", key, "user.count"] for key in chunk]
        values = [[("string", "/a"), ("int", 1), ("int", i)] for i in range(len(chunk))]
        # Every uuid key also repeats in later batches, so frequency alone would not stop it.
        keys += [[all_keys[i % 50]] for i in range(200)]
        values += [[("int", 2)] for _ in range(200)]
        result = infer_batch(state, policy, {"record": Attributes.from_pairs(keys, values)}, b)
    names = [c.name for c in result.decisions.columns]
    assert names == ["attr_http_route", "attr_user_count"]
    assert len(state.keys) == 2  # the uuid keys are not tracked one by one
    families = column_metadata(state)["unbounded_key_families"]
    assert [(f["family"], f["kind"]) for f in families] == [("user.*", "id-like")]
    assert abs(families[0]["approx_keys"] / 10_000 - 1) < 0.2
    assert families[0]["values"] == 10 * 1200
    assert len(state.to_json()) < 4_000


def test_growing_key_family_is_not_promoted() -> None:
    policy = PromotionPolicy(max_columns=20, min_rows=5, min_batches=1, family_max_keys=32)
    state = InferenceState()
    names = [f"{a}{b}" for a in ("al", "bo", "cy", "di", "ed") for b in ("ice", "ob", "an", "ro")]
    names += [f"{n}x" for n in names] + [f"{n}y" for n in names]  # 60 user names, no digits
    for b in range(3):
        keys = [["service.tier", f"user.{name}.clicks"] for name in names for _ in range(3)]
        values = [[("string", "gold"), ("int", 1)] for _ in keys]
        result = infer_batch(state, policy, {"record": Attributes.from_pairs(keys, values)}, b)
    assert [c.name for c in result.decisions.columns] == ["attr_service_tier"]
    families = column_metadata(state)["unbounded_key_families"]
    assert [(f["family"], f["kind"]) for f in families] == [("user.*.clicks", "grown")]
    assert families[0]["values"] == 3 * 180
    assert len(state.keys) == 1


def test_tracked_keys_are_capped() -> None:
    policy = PromotionPolicy(max_columns=5, min_rows=5, min_batches=3, max_tracked_keys=50)
    state = InferenceState()
    for b in range(5):
        keys = [[f"word{chr(97 + b)}{chr(97 + i % 26)}{chr(97 + i // 26)}" for i in range(200)]]
        observe(state, policy, {"record": Attributes.from_pairs(keys, [[("int", 1)] * 200])}, b)
        assert len(state.keys) <= 50


def test_service_name_is_excluded_and_resource_keys_prefixed() -> None:
    state = InferenceState()
    resource = Attributes.from_pairs(
        [["service.name", "host.name"]] * 10, [[("string", "svc"), ("string", "h")]] * 10
    )
    result = infer_batch(state, EAGER, {"resource": resource, "record": Attributes.empty(10)}, 1)
    assert [(c.name, c.doc) for c in result.decisions.columns] == [
        ("res_host_name", "resource attribute host.name")
    ]


def test_decide_adopts_columns_of_the_schema() -> None:
    schema = Schema(
        NestedField(1, "service_name", StringType(), doc="resource attribute service.name"),
        NestedField(
            2, "attributes", MapType(3, StringType(), 4, StringType()), doc="OTLP span attributes"
        ),
        NestedField(5, "attr_latency", LongType(), doc="attribute latency"),
        NestedField(6, "attr_latency__double", DoubleType(), doc="attribute latency"),
        NestedField(7, "attr_x", StringType(), doc="attribute x.y"),
    )
    state = InferenceState()  # e.g. the stored state was lost
    batch = Attributes.from_pairs(
        [["latency", "x_y", "x.y"]] * 10, [[("int", 5), ("int", 1), ("string", "s")]] * 10
    )
    result = infer_batch(state, EAGER, {"record": batch}, 1, schema)
    by_name = {c.name: c for c in result.decisions.columns}
    assert "service_name" not in by_name  # a core column, not a promoted one
    assert not by_name["attr_latency"].active and by_name["attr_latency__double"].active
    assert result.columns["attr_latency__double"].to_pylist() == [5.0] * 10
    assert result.columns["attr_x"].to_pylist() == ["s"] * 10
    # x_y sanitises to attr_x_y, which is free; nothing adopted is added again.
    assert [c.name for c in result.changes] == ["attr_x_y"]


def test_wide_events_are_not_mistaken_for_an_unbounded_family() -> None:
    # 80 fields under app.*, most rows carrying dozens of them: a schema, not data in keys.
    policy = PromotionPolicy(max_columns=10, min_rows=5, min_batches=1)
    state = InferenceState()
    fields = [
        f"app.{a}{b}" for a in ("cart", "user", "plan", "geo") for b in "abcdefghijklmnopqrst"
    ]
    for ts in range(2):
        keys = [fields[: 40 + i % 40] for i in range(50)]  # the first 40 fields are on every row
        values = [[("int", 1)] * len(row) for row in keys]
        result = infer_batch(state, policy, {"record": Attributes.from_pairs(keys, values)}, ts)
    assert column_metadata(state)["unbounded_key_families"] == []
    names = [c.name for c in result.decisions.columns]
    assert names == [f"attr_app_cart{b}" for b in "abcdefghij"]
