"""The inference state of one table, and its JSON form.

Everything schema inference knows about a table lives in an :class:`InferenceState`: per-key
statistics, the promoted columns in creation order (with their statistics), and the key families
found to be unbounded. The writer stores :meth:`InferenceState.to_json` in a table property in the
same commit as the data, so a restarted writer continues with exactly the state the table's
columns were decided from, and the same data always gives the same decisions.

The JSON is compact (keys and families as arrays) and bounded: tracked keys are capped by the
policy, families by :data:`MAX_FAMILIES`, and each sketch is at most ~1.5 KB.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from emberlake.errors import SchemaInferenceError
from lake.schema_inference import families
from lake.schema_inference.naming import Scope
from lake.schema_inference.sketch import DistinctSketch
from lake.schema_inference.stats import ColumnStats, KeyStats
from lake.schema_inference.types import ColumnType

STATE_VERSION = 1
#: Id-like families described per table. Further ones are still detected (the id-like rule is a
#: pure function of the key), just not described. Grown families are all kept: forgetting one
#: would let its keys be tracked again.
MAX_ID_FAMILIES = 32
MAX_FAMILY_EXAMPLES = 3
#: Distinct keys per family are estimated with a coarse sketch (~6.5% error) to stay small.
FAMILY_SKETCH_PRECISION = 8

KeyId = tuple[Scope, str]


@dataclass
class ColumnState:
    """One promoted column: what it holds and since when."""

    name: str
    scope: Scope
    key: str
    type: ColumnType
    created_us: int
    created_batch: int
    #: The column that took over the key's values when their type outgrew this one.
    superseded_by: str | None = None
    stats: ColumnStats = field(default_factory=ColumnStats)

    @property
    def active(self) -> bool:
        return self.superseded_by is None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "scope": self.scope.value,
            "key": self.key,
            "type": self.type.value,
            "created_us": self.created_us,
            "created_batch": self.created_batch,
            "stats": self.stats.to_json(),
        }
        if self.superseded_by is not None:
            data["superseded_by"] = self.superseded_by
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ColumnState:
        return cls(
            name=data["name"],
            scope=Scope(data["scope"]),
            key=data["key"],
            type=ColumnType(data["type"]),
            created_us=data["created_us"],
            created_batch=data["created_batch"],
            superseded_by=data.get("superseded_by"),
            stats=ColumnStats.from_json(data["stats"]),
        )


@dataclass
class FamilyStats:
    """An unbounded key family: how much it carried and what its keys look like."""

    first_seen_us: int
    last_seen_us: int
    #: True for a family found by growth, False for an id-like one (see ``families``).
    grown: bool
    values: int = 0
    examples: list[str] = field(default_factory=list)
    keys: DistinctSketch = field(default_factory=lambda: DistinctSketch(FAMILY_SKETCH_PRECISION))

    #: Keys not yet hashed into ``keys``: sketched in bulk, as there can be thousands a batch.
    pending: list[str] = field(default_factory=list, repr=False, compare=False)

    def add(self, key: str, count: int, timestamp_us: int) -> None:
        self.values += count
        self.pending.append(key)
        if len(self.pending) >= 10_000:
            self.flush()
        if len(self.examples) < MAX_FAMILY_EXAMPLES and key not in self.examples:
            self.examples.append(key)
        self.first_seen_us = min(self.first_seen_us, timestamp_us)
        self.last_seen_us = max(self.last_seen_us, timestamp_us)

    def distinct_keys(self) -> int:
        """Approximate number of distinct keys seen in the family."""
        self.flush()
        return round(self.keys.estimate())

    def flush(self) -> None:
        if self.pending:
            self.keys.update_texts(self.pending)
            self.pending.clear()

    def to_json(self) -> list[Any]:
        self.flush()
        return [
            self.first_seen_us,
            self.last_seen_us,
            int(self.grown),
            self.values,
            self.examples,
            self.keys.to_text(),
        ]

    @classmethod
    def from_json(cls, data: list[Any]) -> FamilyStats:
        first, last, grown, values, examples, keys = data
        return cls(first, last, bool(grown), values, list(examples), DistinctSketch.from_text(keys))


class InferenceState:
    """What schema inference knows about one table; mutated by observe and decide."""

    def __init__(self) -> None:
        #: Rows and batches observed in total.
        self.rows = 0
        self.batches = 0
        #: Tracked keys (bounded by the policy's ``max_tracked_keys``).
        self.keys: dict[KeyId, KeyStats] = {}
        #: Promoted columns by name, in creation order.
        self.columns: dict[str, ColumnState] = {}
        #: Unbounded families by (scope, template).
        self.families: dict[KeyId, FamilyStats] = {}
        # Derived, never serialised: rebuilt from the above.
        self._members: dict[KeyId, set[str]] = {}
        # Memo of untracked keys already known to be unbounded, and their family. Families are
        # never un-flagged, so the memo can only repeat what a fresh check would say.
        self._unbounded: dict[KeyId, KeyId] = {}
        self._active: dict[KeyId, str] = {}

    # -- derived indexes ----------------------------------------------------------------------

    def active_column(self, scope: Scope, key: str) -> ColumnState | None:
        """The column currently receiving a key's values, if the key is promoted."""
        name = self._active.get((scope, key))
        return self.columns[name] if name is not None else None

    def add_column(self, column: ColumnState) -> None:
        """Register a new promoted column; it becomes its key's active column."""
        previous = self._active.get((column.scope, column.key))
        if previous is not None:
            self.columns[previous].superseded_by = column.name
        self.columns[column.name] = column
        self._active[(column.scope, column.key)] = column.name

    def is_promoted(self, scope: Scope, key: str) -> bool:
        return (scope, key) in self._active

    def family_members(self, family: KeyId) -> set[str]:
        return self._members.get(family, set())

    def track(self, scope: Scope, key: str, stats: KeyStats) -> list[KeyId]:
        """Start tracking a key; returns the template families that now hold it."""
        self.keys[(scope, key)] = stats
        grown = []
        for template in families.templates(key):
            members = self._members.setdefault((scope, template), set())
            members.add(key)
            grown.append((scope, template))
        return grown

    def untrack(self, scope: Scope, key: str) -> KeyStats | None:
        """Stop tracking a key (promoted keys stay tracked)."""
        if self.is_promoted(scope, key):
            return None
        stats = self.keys.pop((scope, key), None)
        for template in families.templates(key):
            members = self._members.get((scope, template))
            if members is not None:
                members.discard(key)
                if not members:
                    del self._members[(scope, template)]
        return stats

    def known_unbounded(self, scope: Scope, key: str) -> KeyId | None:
        """The family of a key already found unbounded, from the memo."""
        return self._unbounded.get((scope, key))

    def remember_unbounded(self, scope: Scope, key: str, family: KeyId) -> None:
        if len(self._unbounded) >= 100_000:
            self._unbounded.clear()
        self._unbounded[(scope, key)] = family

    def _reindex(self) -> None:
        self._members = {}
        for scope, key in sorted(self.keys):
            for template in families.templates(key):
                self._members.setdefault((scope, template), set()).add(key)
        self._active = {}
        for column in self.columns.values():
            if column.active:
                self._active[(column.scope, column.key)] = column.name

    # -- JSON -------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": STATE_VERSION,
            "rows": self.rows,
            "batches": self.batches,
            "keys": [
                [scope.value, key, *stats.to_json()]
                for (scope, key), stats in sorted(self.keys.items())
            ],
            "columns": [column.to_json() for column in self.columns.values()],
            "families": [
                [scope.value, template, *fam.to_json()]
                for (scope, template), fam in sorted(self.families.items())
            ],
        }

    def to_json(self) -> str:
        """Compact JSON, stable for the same state (sorted, no whitespace)."""
        return json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InferenceState:
        if data.get("v") != STATE_VERSION:
            raise ValueError(f"unsupported inference state version {data.get('v')!r}")
        state = cls()
        state.rows = data["rows"]
        state.batches = data["batches"]
        for scope, key, *stats in data["keys"]:
            state.keys[(Scope(scope), key)] = KeyStats.from_json(stats)
        for column in data["columns"]:
            parsed = ColumnState.from_json(column)
            state.columns[parsed.name] = parsed
        for scope, template, *fam in data["families"]:
            state.families[(Scope(scope), template)] = FamilyStats.from_json(fam)
        state._reindex()
        return state

    @classmethod
    def from_json(cls, text: str | None) -> InferenceState:
        """Rebuild a state from :meth:`to_json`; empty or ``None`` gives a fresh state."""
        if not text:
            return cls()
        try:
            return cls.from_dict(json.loads(text))
        except (ValueError, KeyError, TypeError) as exc:
            raise SchemaInferenceError(
                f"stored schema inference state is unreadable ({exc!r}); remove the table "
                "property to start afresh: promoted columns are re-adopted from the schema"
            ) from None
