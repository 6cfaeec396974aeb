"""One call per batch: observe, decide, list schema changes, build the typed columns.

The writer's loop, per table and batch::

    result = infer_batch(state, policy, {"record": attrs, "resource": res}, ts_us, table.schema())
    with table.transaction() as tx:
        if result.changes:
            with tx.update_schema() as update:
                apply_changes(update, result.changes)
        tx.append(flattened.append_columns(result.columns))   # plus the offsets property
        tx.set_properties(result.properties(state))

``state`` is mutated. Storing it in the same commit as the data keeps data, schema and state in
step; if the commit fails, continue from a copy taken before the batch (:meth:`snapshot`), or
reload it from the table, so the batch is not counted twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pyarrow as pa
from pyiceberg.schema import Schema

from lake.schema_inference.attributes import Attributes
from lake.schema_inference.columns import build_columns
from lake.schema_inference.evolution import AddColumn, SchemaChange, schema_changes
from lake.schema_inference.metadata import COLUMN_STATS_PROPERTY, STATE_PROPERTY, column_stats_json
from lake.schema_inference.naming import Scope
from lake.schema_inference.observe import observe
from lake.schema_inference.policy import Decisions, PromotionPolicy, decide
from lake.schema_inference.state import InferenceState


@dataclass(frozen=True)
class InferenceResult:
    """What one batch needs: the decisions, schema changes and typed columns."""

    decisions: Decisions
    #: Changes the table schema needs before this batch's columns can be appended.
    changes: list[SchemaChange]
    #: One array per promoted column (superseded ones all-null), in creation order.
    columns: dict[str, pa.Array]

    def properties(self, state: InferenceState) -> dict[str, str]:
        """Table properties to set with the append: the state and the column metadata."""
        return {STATE_PROPERTY: state.to_json(), COLUMN_STATS_PROPERTY: column_stats_json(state)}


def infer_batch(
    state: InferenceState,
    policy: PromotionPolicy,
    batch: Mapping[Scope | str, Attributes],
    timestamp_us: int,
    schema: Schema | None = None,
) -> InferenceResult:
    """Observe a batch's attributes (by scope), decide promotions and build the typed columns.

    ``schema`` is the table's current schema; pass it whenever there is a table, so the changes
    are exactly what it lacks. Without it, the changes are the columns this batch added.
    """
    observe(state, policy, batch, timestamp_us)
    decisions = decide(state, policy, schema)
    if schema is not None:
        changes = schema_changes(schema, decisions)
    else:
        added = set(decisions.added)
        changes = [AddColumn(c.name, c.type, c.doc) for c in decisions.columns if c.name in added]
    columns = build_columns(state, decisions, batch, timestamp_us)
    return InferenceResult(decisions, changes, columns)


def snapshot(state: InferenceState) -> InferenceState:
    """An independent copy of ``state`` (e.g. to roll back after a failed commit)."""
    return InferenceState.from_json(state.to_json())
