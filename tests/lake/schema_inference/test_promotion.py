"""The writer's rows hook: promoted columns on the rows, state in the table properties."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.schema import Schema
from pyiceberg.types import LongType, MapType, NestedField, StringType

from lake.schema_inference import (
    COLUMN_STATS_PROPERTY,
    STATE_PROPERTY,
    Attributes,
    PromotionHook,
    PromotionPolicy,
)

SCHEMA = Schema(
    NestedField(1, "name", StringType(), required=False, doc="OTLP span name"),
    NestedField(
        2,
        "attributes",
        MapType(3, StringType(), 4, StringType(), value_required=False),
        required=False,
        doc="OTLP span attributes",
    ),
)
POLICY = PromotionPolicy(min_rows=5, min_batches=2)


@dataclass
class FakeTable:
    properties: dict[str, str] = field(default_factory=dict)

    def schema(self) -> Schema:
        return SCHEMA

    def name(self) -> tuple[str, str]:
        return ("acme", "spans")


def rows(n: int, status: int, with_kinds: bool = True) -> pa.Table:
    attrs = Attributes.from_pairs(
        [["http.status_code", "http.route"]] * n, [[("int", status), ("string", "/a")]] * n
    )
    columns: dict[str, Any] = {"name": pa.array(["op"] * n), "attributes": attrs.map_array}
    if with_kinds:
        kinds = pa.array(attrs.map_kinds(), pa.int8())
        columns["attributes__kinds"] = pa.ListArray.from_arrays(
            pa.array(attrs.offsets, pa.int32()), kinds
        )
    return pa.table(columns)


def test_hook_adds_typed_columns_and_drops_the_kinds_column() -> None:
    hook = PromotionHook(POLICY, clock=lambda: 7)
    table = FakeTable()
    out, props = hook(table, rows(10, 200))
    assert out.column_names == ["name", "attributes"]  # nothing promoted after one batch
    table.properties.update(props)
    out, props = hook(table, rows(10, 404))
    assert out.column_names == ["name", "attributes", "attr_http_route", "attr_http_status_code"]
    assert out.column("attr_http_status_code").to_pylist() == [404] * 10
    assert out.schema.field("attr_http_route").metadata == {b"doc": b"attribute http.route"}
    stats = json.loads(props[COLUMN_STATS_PROPERTY])["columns"]
    assert stats["attr_http_status_code"]["observed_types"] == {"int": 20}


def test_without_kinds_columns_are_strings() -> None:
    hook = PromotionHook(POLICY)
    table = FakeTable()
    for status in (200, 500):
        out, props = hook(table, rows(10, status, with_kinds=False))
        table.properties.update(props)
    assert out.schema.field("attr_http_status_code").type == pa.string()
    assert out.column("attr_http_status_code").to_pylist() == ["500"] * 10


def test_a_failed_commit_is_not_counted_twice() -> None:
    hook = PromotionHook(POLICY, clock=lambda: 1)
    table = FakeTable()
    _, props = hook(table, rows(10, 200))
    table.properties.update(props)  # committed
    _, lost = hook(table, rows(10, 201))  # this commit fails: properties stay as they were
    _, retried = hook(table, rows(10, 201))
    assert json.loads(retried[STATE_PROPERTY])["rows"] == 20
    assert retried == lost
    # A fresh hook (e.g. a restarted writer) continues from the stored state alike.
    table.properties.update(retried)
    _, again = PromotionHook(POLICY, clock=lambda: 1)(table, rows(10, 202))
    _, same = hook(table, rows(10, 202))
    assert again == same


@pytest.mark.integration
def test_hook_rows_commit_to_a_real_table(tmp_path: Path) -> None:
    catalog = SqlCatalog("test", uri="sqlite:///:memory:", warehouse=tmp_path.as_uri())
    catalog.create_namespace("acme")
    catalog.create_table("acme.spans", SCHEMA)
    hook = PromotionHook(POLICY)
    for status in (200, 201, 202):
        table = catalog.load_table("acme.spans")
        out, props = hook(table, rows(10, status))
        with table.transaction() as tx:
            with tx.update_schema() as update:
                update.union_by_name(out.schema)  # docs come from the field metadata
            tx.append(out)
            tx.set_properties(props)
    table = catalog.load_table("acme.spans")
    status = table.schema().find_field("attr_http_status_code")
    assert (status.field_type, status.doc) == (LongType(), "attribute http.status_code")
    assert "attributes__kinds" not in {f.name for f in table.schema().fields}
    values = table.scan().to_arrow().column("attr_http_status_code").to_pylist()
    assert sorted(values, key=repr) == sorted([None] * 10 + [201] * 10 + [202] * 10, key=repr)
    assert json.loads(table.properties[STATE_PROPERTY])["rows"] == 30
