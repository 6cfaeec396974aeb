"""Statistics of what promoted columns and attribute keys hold.

Two levels, both cheap to update and JSON-serialisable:

- :class:`KeyStats` describes an attribute *key*, whatever column (if any) holds it: how often it
  occurs, the kinds of its values with counts, when it was first and last seen. Decisions are
  made from these.
- :class:`ColumnStats` describes a promoted *column's contents* while it is the key's active
  column: rows written, non-null values, values of the key that did not fit the column's type
  (they are only in the attributes map), an approximate distinct count, up to five examples.

Counting is by occurrence: a key repeated within one row counts twice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from lake.schema_inference.sketch import DistinctSketch
from lake.schema_inference.types import KIND_CODE, KIND_ORDER

MAX_EXAMPLES = 5
MAX_EXAMPLE_CHARS = 64


@dataclass
class KeyStats:
    """What has been seen of one attribute key."""

    #: Rows observed in the table before this key first appeared (frequency baseline).
    rows_before: int
    first_seen_us: int
    last_seen_us: int
    #: Number of batches the key appeared in, and the index of the last one.
    batches: int = 0
    last_batch: int = 0
    #: Values seen (occurrences), in total and by kind code.
    present: int = 0
    kinds: dict[int, int] = field(default_factory=dict)

    def add(self, kind_counts: dict[int, int], batch: int, timestamp_us: int) -> None:
        """Count one batch's values of this key."""
        kinds = self.kinds
        for code, count in kind_counts.items():
            kinds[code] = kinds.get(code, 0) + count
            self.present += count
        self.batches += 1
        self.last_batch = batch
        if timestamp_us > self.last_seen_us:
            self.last_seen_us = timestamp_us
        if timestamp_us < self.first_seen_us:
            self.first_seen_us = timestamp_us

    def kind_names(self) -> dict[str, int]:
        """Observed kinds with counts, by name, most frequent first."""
        ordered = sorted(self.kinds.items(), key=lambda item: (-item[1], item[0]))
        return {KIND_ORDER[code].value: count for code, count in ordered}

    def to_json(self) -> list[Any]:
        return [
            self.rows_before,
            self.first_seen_us,
            self.last_seen_us,
            self.batches,
            self.last_batch,
            self.present,
            {KIND_ORDER[c].value: n for c, n in sorted(self.kinds.items())},
        ]

    @classmethod
    def from_json(cls, data: list[Any]) -> KeyStats:
        rows_before, first, last, batches, last_batch, present, kinds = data
        return cls(
            rows_before=rows_before,
            first_seen_us=first,
            last_seen_us=last,
            batches=batches,
            last_batch=last_batch,
            present=present,
            kinds={KIND_CODE[k]: n for k, n in kinds.items()},
        )


def _example(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_EXAMPLE_CHARS:
        return value[: MAX_EXAMPLE_CHARS - 1] + "…"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # strict JSON has no NaN or infinity
    return value


@dataclass
class ColumnStats:
    """What one promoted column holds, over the rows written while it was active."""

    rows: int = 0
    values: int = 0
    #: Values of the key that did not fit the column's type (kept only in the attributes map).
    unconverted: int = 0
    first_written_us: int | None = None
    last_written_us: int | None = None
    examples: list[Any] = field(default_factory=list)
    sketch: DistinctSketch = field(default_factory=DistinctSketch)
    # Values already in the sketch, for low-cardinality columns: a batch of known values then
    # costs a set lookup instead of hashing. Not serialised; re-adding a value changes nothing.
    _seen: set[Any] = field(default_factory=set, repr=False, compare=False)

    @property
    def null_fraction(self) -> float:
        return 1.0 - self.values / self.rows if self.rows else 1.0

    @property
    def distinct(self) -> int:
        return round(self.sketch.estimate())

    def add(
        self,
        column: pa.Array,
        unconverted: int,
        timestamp_us: int,
        distinct: pa.Array | None = None,
    ) -> None:
        """Account one batch's array of this column.

        ``distinct``: the column's distinct values if already known (repeats are harmless).
        """
        self.rows += len(column)
        self.unconverted += unconverted
        written = len(column) - column.null_count
        if not written:
            return
        self.values += written
        if self.first_written_us is None or timestamp_us < self.first_written_us:
            self.first_written_us = timestamp_us
        if self.last_written_us is None or timestamp_us > self.last_written_us:
            self.last_written_us = timestamp_us
        uniques = (column.unique() if distinct is None else distinct).drop_null()
        self._sketch(uniques)
        if len(self.examples) < MAX_EXAMPLES:
            for value in uniques.slice(0, MAX_EXAMPLES).to_pylist():
                example = _example(value)
                if example not in self.examples and len(self.examples) < MAX_EXAMPLES:
                    self.examples.append(example)

    def _sketch(self, uniques: pa.Array) -> None:
        if len(uniques) > 64:
            self.sketch.update(uniques)
            return
        values = uniques.to_pylist()
        seen = self._seen
        if all(v in seen for v in values):
            return
        self.sketch.update(uniques)
        if len(seen) < 1024:
            seen.update(values)

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "values": self.values,
            "unconverted": self.unconverted,
            "first_written_us": self.first_written_us,
            "last_written_us": self.last_written_us,
            "examples": self.examples,
            "sketch": self.sketch.to_text(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ColumnStats:
        return cls(
            rows=data["rows"],
            values=data["values"],
            unconverted=data["unconverted"],
            first_written_us=data["first_written_us"],
            last_written_us=data["last_written_us"],
            examples=list(data["examples"]),
            sketch=DistinctSketch.from_text(data["sketch"]),
        )
