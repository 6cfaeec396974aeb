"""Promotion decisions: which attribute keys get typed columns, and what happens when types change.

**Promotion.** A tracked key becomes a column when all of these hold:

- it is not excluded (resource ``service.name`` already has the core ``service_name`` column);
- it has occurred at least ``min_rows`` times, in at least ``min_batches`` batches (so a one-off
  burst of new keys cannot use up the column budget on its own);
- it occurred in at least ``min_fraction`` of the rows observed since it first appeared (keys
  that appear late, with a new deployment, are not penalised for the rows before them);
- it has a value type (keys whose values are all empty are not promoted);
- it is not unbounded (such keys are never tracked, see :mod:`lake.schema_inference.families`);
- the table has fewer than ``max_columns`` promoted columns.

Candidates are taken by occurrence count (highest first), then scope (resource, scope, record),
then key, so the same data always promotes the same keys in the same order, and so gives the
same names (see :mod:`lake.schema_inference.naming`). Columns are never dropped or renamed.

**Type.** A key's column type is ``promote`` (see :mod:`lake.schema_inference.types`) over the
kinds of its values, ignoring kinds that make up less than ``type_noise_fraction`` of them: a
stray ``"n/a"`` among a million status codes does not turn the column into a string column. The
stray values are still kept: they stay in the attributes map.

**Type changes (the sibling rule).** Iceberg cannot widen long to double or anything to string,
so an existing column's type never changes. When a key's type outgrows its column (long column,
doubles now above the noise fraction), the policy adds a *sibling* column of the wider type named
``<first column>__double`` or ``<first column>__str``, and the sibling becomes the key's *active*
column: from then on every value of the key that fits goes there (ints into ``__double`` too),
and the old column stops receiving values (it is *superseded*; its data stays). Each value is thus
in exactly one typed column, or only in the map. A key can have at most three columns (e.g. long,
then ``__double``, then ``__str``). All of a key's typed values are read with
``COALESCE(attr_x__str, CAST(attr_x__double AS VARCHAR), CAST(attr_x AS VARCHAR))``; the column
metadata spells this out per key. Siblings count against ``max_columns``; when the budget is
spent, no sibling is added and values that don't fit stay in the map (never a failed commit).
Widenings are decided before new promotions, so established keys keep their values typed first.

Adding a sibling rather than "demoting" the key keeps both old data and new data typed, keeps
every column's type fixed (readers and pruning stats never see a type change), and a query on
the old column keeps returning exactly what it returned before.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from pyiceberg.schema import Schema
from pyiceberg.types import (
    BooleanType,
    DoubleType,
    FloatType,
    IcebergType,
    IntegerType,
    LongType,
    StringType,
)

from emberlake.settings import LakeSettings
from lake.schema_inference.naming import (
    PREFIX,
    SCOPE_ORDER,
    Scope,
    column_name,
    doc_for,
    parse_doc,
)
from lake.schema_inference.state import ColumnState, InferenceState, KeyId
from lake.schema_inference.stats import KeyStats
from lake.schema_inference.types import (
    KIND_ORDER,
    KIND_TYPES,
    SIBLING_SUFFIX,
    ColumnType,
    promote,
)

DEFAULT_EXCLUDE: frozenset[KeyId] = frozenset({(Scope.RESOURCE, "service.name")})


@dataclass(frozen=True)
class PromotionPolicy:
    """Thresholds of schema inference; see the module docs for how each is used."""

    max_columns: int = 64
    min_rows: int = 20
    min_fraction: float = 0.01
    min_batches: int = 2
    type_noise_fraction: float = 0.01
    #: A single-wildcard template with more distinct keys than this, of which rows carry fewer
    #: than ``family_keys_per_row`` on average, is an unbounded family (see ``families``).
    family_max_keys: int = 32
    family_keys_per_row: float = 2.0
    #: Keys tracked one by one; beyond this the least recently seen unpromoted ones are dropped.
    max_tracked_keys: int = 512
    exclude: frozenset[KeyId] = field(default=DEFAULT_EXCLUDE)

    @classmethod
    def from_settings(cls, lake: LakeSettings) -> PromotionPolicy:
        """The policy the lake settings describe."""
        return cls(
            max_columns=lake.max_promoted_columns,
            min_rows=lake.promote_min_rows,
            min_fraction=lake.promote_min_fraction,
            min_batches=lake.promote_min_batches,
        )


@dataclass(frozen=True)
class PromotedColumn:
    """One promoted column as the writer needs it."""

    name: str
    scope: Scope
    key: str
    type: ColumnType
    #: False once a sibling took over the key's values; the column then only holds old data.
    active: bool

    @property
    def doc(self) -> str:
        """The Iceberg field doc, e.g. "attribute http.route"."""
        return doc_for(self.scope, self.key)


@dataclass(frozen=True)
class Decisions:
    """Every promoted column of a table after a decision round, in creation order."""

    columns: tuple[PromotedColumn, ...]
    #: Names of the columns created by this round.
    added: tuple[str, ...] = ()

    def active(self) -> dict[KeyId, PromotedColumn]:
        """The column receiving each promoted key's values."""
        return {(c.scope, c.key): c for c in self.columns if c.active}

    @classmethod
    def of(cls, state: InferenceState, added: Iterable[str] = ()) -> Decisions:
        """The decisions recorded in ``state``."""
        return cls(
            tuple(
                PromotedColumn(c.name, c.scope, c.key, c.type, c.active)
                for c in state.columns.values()
            ),
            tuple(added),
        )


def target_type(kinds: Mapping[int, int], noise_fraction: float) -> ColumnType | None:
    """The column type for a key's kind counts (by kind code), ignoring noise kinds."""
    typed = {code: n for code, n in kinds.items() if KIND_TYPES[KIND_ORDER[code]] is not None}
    total = sum(typed.values())
    result: ColumnType | None = None
    for code in sorted(typed):
        if typed[code] >= noise_fraction * total:
            column_type = KIND_TYPES[KIND_ORDER[code]]
            assert column_type is not None
            result = promote(result, column_type)
    return result


def _eligible(
    state: InferenceState, policy: PromotionPolicy, ident: KeyId, stats: KeyStats
) -> bool:
    if ident in policy.exclude or state.is_promoted(*ident):
        return False
    if stats.present < policy.min_rows or stats.batches < policy.min_batches:
        return False
    seen = state.rows - stats.rows_before
    if seen <= 0 or stats.present < policy.min_fraction * seen:
        return False
    return target_type(stats.kinds, policy.type_noise_fraction) is not None


def decide(
    state: InferenceState, policy: PromotionPolicy, schema: Schema | None = None
) -> Decisions:
    """Promote keys and add siblings as the policy says; records them in ``state``.

    With ``schema`` (the table's current schema), promoted columns found in it but not in the
    state are adopted first (e.g. after the stored state was lost), and its column names are
    never reused.
    """
    taken: set[str] = set(state.columns)
    if schema is not None:
        adopt(state, schema)
        taken |= {f.name for f in schema.fields} | set(state.columns)
    added: list[str] = []
    timestamp_us = max((s.last_seen_us for s in state.keys.values()), default=0)

    for column in list(state.columns.values()):
        if len(state.columns) >= policy.max_columns:
            break
        if not column.active:
            continue
        stats = state.keys.get((column.scope, column.key))
        target = target_type(stats.kinds, policy.type_noise_fraction) if stats else None
        if target is None or promote(column.type, target) == column.type:
            continue
        wider = promote(column.type, target)
        name = _sibling_name(state, column, wider, taken)
        state.add_column(
            ColumnState(name, column.scope, column.key, wider, timestamp_us, state.batches)
        )
        taken.add(name)
        added.append(name)

    candidates = sorted(
        (
            (-stats.present, SCOPE_ORDER[scope], key, scope, stats)
            for (scope, key), stats in state.keys.items()
            if _eligible(state, policy, (scope, key), stats)
        ),
        key=lambda item: item[:3],
    )
    for _, _, key, scope, stats in candidates:
        if len(state.columns) >= policy.max_columns:
            break
        column_type = target_type(stats.kinds, policy.type_noise_fraction)
        assert column_type is not None
        name = column_name(scope, key, taken)
        state.add_column(ColumnState(name, scope, key, column_type, timestamp_us, state.batches))
        taken.add(name)
        added.append(name)
    return Decisions.of(state, added)


def _sibling_name(
    state: InferenceState, column: ColumnState, wider: ColumnType, taken: set[str]
) -> str:
    ident = (column.scope, column.key)
    first = next(c for c in state.columns.values() if (c.scope, c.key) == ident)
    name = first.name + SIBLING_SUFFIX[wider]
    n = 2
    while name in taken:
        name = f"{first.name}{SIBLING_SUFFIX[wider]}{n}"
        n += 1
    return name


_FROM_ICEBERG: dict[type[IcebergType], ColumnType] = {
    BooleanType: ColumnType.BOOLEAN,
    IntegerType: ColumnType.LONG,
    LongType: ColumnType.LONG,
    FloatType: ColumnType.DOUBLE,
    DoubleType: ColumnType.DOUBLE,
    StringType: ColumnType.STRING,
}
_WIDTH = {ColumnType.BOOLEAN: 0, ColumnType.LONG: 1, ColumnType.DOUBLE: 2, ColumnType.STRING: 3}


def adopt(state: InferenceState, schema: Schema) -> list[str]:
    """Take promoted columns of ``schema`` that the state does not know into it.

    A column is recognised by its name prefix and its doc ("attribute <key>", "resource attribute
    <key>", ...); core columns such as ``service_name`` carry such docs too but not the prefix.
    Where a key ends up with several columns, the widest type is active. Returns adopted names.
    """
    adopted: list[str] = []
    found: list[tuple[int, int, ColumnState]] = []
    for position, f in enumerate(schema.fields):
        source = parse_doc(f.doc)
        column_type = _FROM_ICEBERG.get(type(f.field_type))
        if source is None or column_type is None or f.name in state.columns:
            continue
        scope, key = source
        if not f.name.startswith(PREFIX[scope]):
            continue
        column = ColumnState(f.name, scope, key, column_type, 0, 0)
        found.append((_WIDTH[column_type], position, column))
    for _, _, column in sorted(found, key=lambda item: item[:2]):
        current = state.active_column(column.scope, column.key)
        if current is None or _WIDTH[column.type] > _WIDTH[current.type]:
            state.add_column(column)
        else:
            column.superseded_by = current.name
            state.columns[column.name] = column
        adopted.append(column.name)
    return adopted
