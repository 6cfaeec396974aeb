"""Schema inference: typed Iceberg columns for frequent, stable OTLP attribute keys.

Pure logic: values in, values out; no Kafka, catalog or DuckDB. The pieces, in data order:

- :mod:`.attributes`: a batch's attributes per scope as flat arrays (keys, text, kind);
- :mod:`.keyvalues`: the same from OTLP ``KeyValue`` protos, in one pass;
- :mod:`.observe`: per-key counts into the :class:`InferenceState` (:mod:`.state`, JSON-able);
- :mod:`.families`: which keys are unbounded (ids in keys, ever-growing key families);
- :mod:`.policy`: which keys to promote, and the sibling rule when a key's type outgrows its
  column (Iceberg cannot widen long to double or anything to string);
- :mod:`.types`: the kinds, column types and the one widening table ``promote(old, new)``;
- :mod:`.naming`: predictable column names (``attr_``/``res_``/``scope_`` + sanitised key);
- :mod:`.evolution`: the schema changes the table needs;
- :mod:`.columns`: the typed Arrow arrays, values that don't fit staying in the map;
- :mod:`.stats`, :mod:`.sketch`, :mod:`.metadata`: per-column statistics for SQL writers;
- :mod:`.inference`: ``infer_batch``, all of the above in one call per batch;
- :mod:`.promotion`: ``PromotionHook``, that call as the lake writer's rows hook.
"""

from lake.schema_inference.attributes import Attributes
from lake.schema_inference.columns import build_columns, promoted_fields
from lake.schema_inference.evolution import (
    AddColumn,
    SchemaChange,
    WidenColumn,
    apply_changes,
    evolve_schema,
    schema_changes,
)
from lake.schema_inference.inference import InferenceResult, infer_batch, snapshot
from lake.schema_inference.keyvalues import extract
from lake.schema_inference.metadata import (
    COLUMN_STATS_PROPERTY,
    STATE_PROPERTY,
    column_metadata,
    column_stats_json,
)
from lake.schema_inference.naming import Scope, column_name
from lake.schema_inference.observe import observe
from lake.schema_inference.policy import Decisions, PromotedColumn, PromotionPolicy, decide
from lake.schema_inference.promotion import PromotionHook
from lake.schema_inference.state import InferenceState
from lake.schema_inference.types import ColumnType, Kind, kind_code_of, promote

__all__ = [
    "COLUMN_STATS_PROPERTY",
    "STATE_PROPERTY",
    "AddColumn",
    "Attributes",
    "ColumnType",
    "Decisions",
    "InferenceResult",
    "InferenceState",
    "Kind",
    "PromotedColumn",
    "PromotionHook",
    "PromotionPolicy",
    "SchemaChange",
    "Scope",
    "WidenColumn",
    "apply_changes",
    "build_columns",
    "column_metadata",
    "column_name",
    "column_stats_json",
    "decide",
    "evolve_schema",
    "extract",
    "infer_batch",
    "kind_code_of",
    "observe",
    "promote",
    "promoted_fields",
    "schema_changes",
    "snapshot",
]
