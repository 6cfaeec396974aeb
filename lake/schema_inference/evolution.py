"""From decisions to Iceberg schema changes, as values.

:func:`schema_changes` compares the table's current schema with the promoted columns and lists
what the schema lacks: an :class:`AddColumn` per new column (optional, with its type and a doc
naming its source, e.g. "attribute http.route"), and a :class:`WidenColumn` where an existing
column has a narrower type Iceberg can widen (int -> long, float -> double; only possible for
columns created outside the inference). Nothing is ever narrowed, dropped or renamed: a column
whose existing type no legal promotion reaches is an error, which cannot happen when
:func:`lake.schema_inference.policy.decide` was given the same schema (it adopts such columns).

:func:`apply_changes` replays the changes on a pyiceberg ``UpdateSchema`` (or anything with its
``add_column``/``update_column`` methods); :func:`evolve_schema` computes the resulting schema
without a catalog.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pyiceberg.schema import Schema
from pyiceberg.types import FloatType, IcebergType, IntegerType, NestedField

from emberlake.errors import SchemaInferenceError
from lake.schema_inference.policy import Decisions
from lake.schema_inference.types import ColumnType, iceberg_type


@dataclass(frozen=True)
class AddColumn:
    """Add an optional top-level column."""

    name: str
    type: ColumnType
    doc: str


@dataclass(frozen=True)
class WidenColumn:
    """Widen an existing column by a legal Iceberg promotion."""

    name: str
    type: ColumnType


SchemaChange = AddColumn | WidenColumn


class SchemaUpdate(Protocol):
    """The part of pyiceberg's ``UpdateSchema`` the changes need."""

    def add_column(
        self, path: str, field_type: IcebergType, doc: str | None = ..., required: bool = ...
    ) -> Any: ...

    def update_column(self, path: str, field_type: Any = ...) -> Any: ...


_LEGAL: set[tuple[type[IcebergType], ColumnType]] = {
    (IntegerType, ColumnType.LONG),
    (FloatType, ColumnType.DOUBLE),
}


def schema_changes(schema: Schema, decisions: Decisions) -> list[SchemaChange]:
    """What ``schema`` needs so that every promoted column exists with its type."""
    existing = {f.name: f for f in schema.fields}
    changes: list[SchemaChange] = []
    for column in decisions.columns:
        field = existing.get(column.name)
        wanted = iceberg_type(column.type)
        if field is None:
            changes.append(AddColumn(column.name, column.type, column.doc))
        elif field.field_type == wanted:
            continue
        elif (type(field.field_type), column.type) in _LEGAL:
            changes.append(WidenColumn(column.name, column.type))
        else:
            raise SchemaInferenceError(
                f"column {column.name} is {field.field_type} in the table but inference wants "
                f"{wanted}, and Iceberg cannot change one into the other; pass the table schema "
                "to decide() so existing columns are adopted"
            )
    return changes


def apply_changes(update: SchemaUpdate, changes: Sequence[SchemaChange]) -> None:
    """Replay ``changes`` on a pyiceberg ``UpdateSchema`` (inside a transaction or not)."""
    for change in changes:
        if isinstance(change, AddColumn):
            update.add_column(change.name, iceberg_type(change.type), doc=change.doc)
        else:
            update.update_column(change.name, field_type=iceberg_type(change.type))


def evolve_schema(schema: Schema, changes: Sequence[SchemaChange]) -> Schema:
    """The schema after ``changes``, computed without a catalog; new ids follow the highest."""
    fields = list(schema.fields)
    by_name = {f.name: i for i, f in enumerate(fields)}
    next_id = schema.highest_field_id
    for change in changes:
        if isinstance(change, AddColumn):
            if change.name in by_name:
                raise SchemaInferenceError(f"column {change.name} already exists")
            next_id += 1
            by_name[change.name] = len(fields)
            fields.append(
                NestedField(
                    field_id=next_id,
                    name=change.name,
                    field_type=iceberg_type(change.type),
                    required=False,
                    doc=change.doc,
                )
            )
        else:
            i = by_name[change.name]
            old = fields[i]
            if (type(old.field_type), change.type) not in _LEGAL:
                raise SchemaInferenceError(f"cannot widen {old.field_type} to {change.type}")
            fields[i] = NestedField(
                field_id=old.field_id,
                name=old.name,
                field_type=iceberg_type(change.type),
                required=old.required,
                doc=old.doc,
            )
    return Schema(
        *fields,
        schema_id=schema.schema_id + 1,
        identifier_field_ids=list(schema.identifier_field_ids),
    )
