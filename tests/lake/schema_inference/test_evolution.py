"""Schema changes from decisions: pure evolution, and applied to a real Iceberg table."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.schema import Schema
from pyiceberg.types import (
    BooleanType,
    DoubleType,
    IntegerType,
    LongType,
    MapType,
    NestedField,
    StringType,
)

from emberlake.errors import SchemaInferenceError
from lake.schema_inference import (
    STATE_PROPERTY,
    AddColumn,
    Attributes,
    ColumnType,
    Decisions,
    InferenceState,
    PromotedColumn,
    PromotionPolicy,
    Scope,
    WidenColumn,
    apply_changes,
    column_metadata,
    evolve_schema,
    infer_batch,
    schema_changes,
)

BASE = Schema(
    NestedField(1, "name", StringType(), required=False, doc="OTLP span name"),
    NestedField(
        2,
        "attributes",
        MapType(3, StringType(), 4, StringType(), value_required=False),
        required=False,
        doc="OTLP span attributes",
    ),
)


def _decisions(*columns: tuple[str, str, ColumnType, bool]) -> Decisions:
    return Decisions(tuple(PromotedColumn(n, Scope.RECORD, k, t, a) for n, k, t, a in columns))


def test_changes_add_missing_columns_with_docs() -> None:
    decisions = _decisions(
        ("attr_http_route", "http.route", ColumnType.STRING, True),
        ("attr_ok", "ok", ColumnType.BOOLEAN, True),
    )
    changes = schema_changes(BASE, decisions)
    assert changes == [
        AddColumn("attr_http_route", ColumnType.STRING, "attribute http.route"),
        AddColumn("attr_ok", ColumnType.BOOLEAN, "attribute ok"),
    ]
    evolved = evolve_schema(BASE, changes)
    assert [(f.field_id, f.name, f.field_type, f.required, f.doc) for f in evolved.fields[2:]] == [
        (5, "attr_http_route", StringType(), False, "attribute http.route"),
        (6, "attr_ok", BooleanType(), False, "attribute ok"),
    ]
    assert evolved.fields[:2] == BASE.fields
    assert schema_changes(evolved, decisions) == []  # nothing left to do


def test_legal_widening_only() -> None:
    schema = Schema(
        NestedField(1, "attr_n", IntegerType(), required=False, doc="attribute n"),
        NestedField(2, "attr_s", StringType(), required=False, doc="attribute s"),
    )
    widen = _decisions(("attr_n", "n", ColumnType.LONG, True))
    assert schema_changes(schema, widen) == [WidenColumn("attr_n", ColumnType.LONG)]
    assert evolve_schema(schema, schema_changes(schema, widen)).fields[0].field_type == LongType()
    narrow = _decisions(("attr_s", "s", ColumnType.LONG, True))
    with pytest.raises(SchemaInferenceError, match="cannot change"):
        schema_changes(schema, narrow)
    with pytest.raises(SchemaInferenceError):
        evolve_schema(schema, [WidenColumn("attr_s", ColumnType.DOUBLE)])


def _batch(key_values: dict[str, list[tuple[str, object]]], n: int) -> Attributes:
    keys = [[k for k in key_values if i < len(key_values[k])] for i in range(n)]
    values = [[key_values[k][i] for k in row] for i, row in enumerate(keys)]
    return Attributes.from_pairs(keys, values)


@pytest.mark.integration
def test_evolution_applies_to_a_real_table_while_types_change(tmp_path: Path) -> None:
    catalog = SqlCatalog("test", uri="sqlite:///:memory:", warehouse=tmp_path.as_uri())
    catalog.create_namespace("acme")
    table = catalog.create_table("acme.spans", BASE)
    policy = PromotionPolicy(min_rows=5, min_batches=1)
    state = InferenceState()
    batches = [
        {"http.status_code": [("int", 200)] * 10, "http.route": [("string", "/a")] * 10},
        {"http.status_code": [("double", 2.5)] * 10, "retry": [("bool", True)] * 10},
        {"http.status_code": [("string", "oops")] * 10, "http.route": [("int", 7)] * 10},
    ]
    for ts, key_values in enumerate(batches):
        attrs = _batch(key_values, 10)
        result = infer_batch(state, policy, {"record": attrs}, 1_000 + ts, table.schema())
        data = pa.table(
            {"name": pa.array(["span"] * 10), "attributes": attrs.map_array, **result.columns}
        )
        with table.transaction() as tx:
            if result.changes:
                with tx.update_schema() as update:
                    apply_changes(update, result.changes)
            tx.append(data)
            tx.set_properties(result.properties(state))
        table = catalog.load_table("acme.spans")

    fields = {f.name: f for f in table.schema().fields}
    assert {
        name: (f.field_type, f.doc) for name, f in fields.items() if name.startswith("attr_")
    } == {
        "attr_http_status_code": (LongType(), "attribute http.status_code"),
        "attr_http_route": (StringType(), "attribute http.route"),
        "attr_http_status_code__double": (DoubleType(), "attribute http.status_code"),
        "attr_retry": (BooleanType(), "attribute retry"),
        "attr_http_status_code__str": (StringType(), "attribute http.status_code"),
    }
    rows = table.scan().to_arrow().to_pylist()
    assert len(rows) == 30
    typed = [
        (
            r["attr_http_status_code"],
            r["attr_http_status_code__double"],
            r["attr_http_status_code__str"],
        )
        for r in rows
    ]
    assert sorted(typed, key=repr) == sorted(
        [(200, None, None)] * 10 + [(None, 2.5, None)] * 10 + [(None, None, "oops")] * 10, key=repr
    )
    # The route turned int in the last batch: its string column takes the text.
    assert (
        sorted(r["attr_http_route"] for r in rows if r["attr_http_route"])
        == ["/a"] * 10 + ["7"] * 10
    )
    # Every value is still in the map.
    assert sum(len(r["attributes"]) for r in rows) == 60
    # The state stored with the data restores exactly, and the schema agrees with it.
    restored = InferenceState.from_json(table.properties[STATE_PROPERTY])
    assert restored.to_json() == state.to_json()
    assert column_metadata(restored)["columns"]["attr_retry"]["observed_types"] == {"bool": 10}
