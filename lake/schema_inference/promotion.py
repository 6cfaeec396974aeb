"""Schema inference as one step of the lake writer: flattened rows in, rows with typed columns out.

:class:`PromotionHook` fits the writer's rows hook (``(table, rows) -> (rows, properties)``):

1. it takes the table's stored state from ``table.properties`` (property
   ``emberlake.schema_inference``), reusing its in-memory copy when the stored text is the one it
   returned last time, so a failed commit (property unchanged) is never counted twice;
2. it reads the batch's attributes from the rows' map columns (``attributes``,
   ``resource_attributes``) and, when the flattener supplies them, from their kind columns
   (``attributes__kinds``, ``resource_attributes__kinds``: ``list<int8>`` of
   :data:`lake.schema_inference.types.KIND_CODE` per map entry), which it removes from the rows.
   Without kinds every value counts as a string, so promoted columns are string columns: never
   wrong, just less typed;
3. it returns the rows plus one Arrow field per promoted column (optional, ``doc`` metadata
   naming the source, e.g. "attribute http.route") and the table properties to set in the same
   commit: the state and the column metadata (``emberlake.column_stats``).

A writer that has the flattener's interned attributes can call :meth:`PromotionHook.promote` with
them instead (see :meth:`lake.schema_inference.attributes.Attributes.from_interned`): faster.
The table is only read (schema and properties); the hook does no I/O.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import pyarrow as pa
from pyiceberg.schema import Schema

from lake.schema_inference.attributes import Attributes
from lake.schema_inference.columns import promoted_fields
from lake.schema_inference.inference import infer_batch
from lake.schema_inference.metadata import STATE_PROPERTY
from lake.schema_inference.naming import Scope
from lake.schema_inference.policy import PromotionPolicy
from lake.schema_inference.state import InferenceState

#: Map column of each scope in the flattened rows.
MAP_COLUMNS: dict[Scope, str] = {
    Scope.RESOURCE: "resource_attributes",
    Scope.RECORD: "attributes",
}
#: Suffix of the optional column carrying the kind of every map entry.
KINDS_SUFFIX = "__kinds"


class TableView(Protocol):
    """What the hook reads of a table (a pyiceberg ``Table`` has it)."""

    @property
    def properties(self) -> Mapping[str, str]: ...

    def schema(self) -> Schema: ...

    def name(self) -> Any: ...


def _micros_now() -> int:
    return time.time_ns() // 1000


class PromotionHook:
    """Adds promoted attribute columns to each batch of a table and keeps the inference state."""

    def __init__(self, policy: PromotionPolicy, clock: Callable[[], int] = _micros_now) -> None:
        self.policy = policy
        self.clock = clock
        # Per table: the state text last returned and the live state it describes.
        self._states: dict[Any, tuple[str, InferenceState]] = {}

    def __call__(self, table: TableView, rows: pa.Table) -> tuple[pa.Table, dict[str, str]]:
        """The rows hook: attributes from the rows' map columns (and kind columns, if any)."""
        batch: dict[Scope | str, Attributes] = {}
        for scope, column in MAP_COLUMNS.items():
            if column not in rows.column_names:
                continue
            kinds_column = column + KINDS_SUFFIX
            if kinds_column in rows.column_names:
                kinds = rows.column(kinds_column).combine_chunks().flatten()
                rows = rows.drop_columns([kinds_column])
            else:
                kinds = None
            batch[scope] = Attributes.from_map(rows.column(column), kinds)
        return self.promote(table, rows, batch)

    def promote(
        self, table: TableView, rows: pa.Table, batch: Mapping[Scope | str, Attributes]
    ) -> tuple[pa.Table, dict[str, str]]:
        """Rows with every promoted column appended, and the properties to commit with them."""
        state = self._state(table)
        result = infer_batch(state, self.policy, batch, self.clock(), table.schema())
        for field in promoted_fields(result.decisions):
            column = result.columns[field.name]
            if field.name in rows.column_names:
                rows = rows.drop_columns([field.name])
            rows = rows.append_column(field, column)
        properties = result.properties(state)
        self._states[table.name()] = (properties[STATE_PROPERTY], state)
        return rows, properties

    def _state(self, table: TableView) -> InferenceState:
        stored = table.properties.get(STATE_PROPERTY, "")
        cached = self._states.get(table.name())
        if cached is not None and cached[0] == stored:
            return cached[1]
        return InferenceState.from_json(stored)
