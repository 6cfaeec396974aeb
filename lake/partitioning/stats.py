"""Table layout and table statistics as plain values.

A :class:`Layout` is a table's partition spec and sort order written as transform strings
(``day(start_time)``, ``bucket[16](trace_id)``), so the policy can reason about layouts without a
catalog. :class:`TableStats` is what the policy knows about a table's data: rows, files and bytes
per partition and per UTC day, distinct services, the time span and the data rate. The lake edge
(``lake/layout.py``) builds both from an Iceberg table.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

#: Transforms that partition a timestamp by time, finest last.
TIME_TRANSFORMS = ("year", "month", "day", "hour")


@dataclass(frozen=True)
class LayoutField:
    """One partition field: a transform applied to a source column."""

    source: str
    transform: str = "identity"

    def __str__(self) -> str:
        if self.transform == "identity":
            return self.source
        return f"{self.transform}({self.source})"

    @property
    def is_time(self) -> bool:
        return self.transform in TIME_TRANSFORMS

    @property
    def is_bucket(self) -> bool:
        return self.transform.startswith("bucket[")


@dataclass(frozen=True)
class SortKey:
    """One sort field: a column (optionally transformed), direction and null placement."""

    source: str
    transform: str = "identity"
    descending: bool = False
    #: None: Iceberg's default for the direction (nulls first ascending, last descending).
    nulls_first: bool | None = None

    @property
    def places_nulls_first(self) -> bool:
        return (not self.descending) if self.nulls_first is None else self.nulls_first

    def __str__(self) -> str:
        name = self.source if self.transform == "identity" else f"{self.transform}({self.source})"
        return f"{name} DESC" if self.descending else name


@dataclass(frozen=True)
class Layout:
    """A partition spec, a sort order and the columns whose rewritten files carry Parquet Bloom
    filters; empty tuples mean unpartitioned / unsorted / none."""

    partition: tuple[LayoutField, ...] = ()
    sort: tuple[SortKey, ...] = ()
    bloom: tuple[str, ...] = ()

    def describe_partition(self) -> str:
        return ", ".join(str(f) for f in self.partition) or "unpartitioned"

    def describe_sort(self) -> str:
        return ", ".join(str(k) for k in self.sort) or "unsorted"

    def __str__(self) -> str:
        text = f"partition by [{self.describe_partition()}], sort by [{self.describe_sort()}]"
        return text + (f", bloom filters on [{', '.join(self.bloom)}]" if self.bloom else "")

    def time_field(self, column: str | None) -> LayoutField | None:
        """The time transform on ``column``, if the spec has one."""
        for f in self.partition:
            if f.source == column and f.is_time:
                return f
        return None

    def field_on(self, column: str, *, transform_prefix: str = "") -> LayoutField | None:
        """The first partition field on ``column`` whose transform starts with the prefix."""
        for f in self.partition:
            if f.source == column and f.transform.startswith(transform_prefix):
                return f
        return None

    def without(self, removed: LayoutField) -> Layout:
        return Layout(tuple(f for f in self.partition if f != removed), self.sort, self.bloom)

    def with_field(self, added: LayoutField) -> Layout:
        return Layout((*self.partition, added), self.sort, self.bloom)

    def with_sort(self, sort: tuple[SortKey, ...]) -> Layout:
        return Layout(self.partition, sort, self.bloom)

    def with_bloom(self, bloom: tuple[str, ...]) -> Layout:
        return Layout(self.partition, self.sort, bloom)


@dataclass(frozen=True)
class PartitionStats:
    """Rows, files and bytes of the live data files in one partition of one spec."""

    spec_id: int
    #: (partition field name, human-readable value) pairs, e.g. ("start_time_day", "2026-01-01").
    values: tuple[tuple[str, str], ...]
    rows: int
    files: int
    bytes: int

    @property
    def key(self) -> str:
        return "/".join(f"{k}={v}" for k, v in self.values) or "(unpartitioned)"


@dataclass(frozen=True)
class DayStats:
    """Data volume of one UTC day, whatever the partitioning (from the files' time bounds)."""

    day: str
    rows: int
    files: int
    bytes: int


@dataclass(frozen=True)
class TableStats:
    """What the layout policy knows about a table's data."""

    table: str
    layout: Layout
    columns: tuple[str, ...]
    #: The event-time column (start_time for spans, time for logs and metrics), if any.
    time_column: str | None
    spec_id: int
    rows: int
    files: int
    bytes: int
    partitions: tuple[PartitionStats, ...] = ()
    days: tuple[DayStats, ...] = ()
    #: Distinct service names seen (from partition values or a sample of recent files).
    distinct_services: int | None = None
    #: Event-time range of the data, microseconds since the epoch (UTC).
    time_min_us: int | None = None
    time_max_us: int | None = None
    snapshots: int = 0
    #: Files per spec id: files of older specs are rewritten into the current one by compaction.
    files_by_spec: tuple[tuple[int, int], ...] = field(default_factory=tuple)

    @property
    def time_span_seconds(self) -> float:
        if self.time_min_us is None or self.time_max_us is None:
            return 0.0
        return max(0.0, (self.time_max_us - self.time_min_us) / 1e6)

    @property
    def rows_per_second(self) -> float:
        """Average data rate over the event-time span (0 when the span is empty)."""
        span = self.time_span_seconds
        return self.rows / span if span > 0 else 0.0

    @property
    def largest_day(self) -> DayStats | None:
        return max(self.days, key=lambda d: d.bytes, default=None)

    @property
    def mean_file_bytes(self) -> float:
        return self.bytes / self.files if self.files else 0.0


def day_stats(items: Iterable[tuple[str, int, int]]) -> tuple[DayStats, ...]:
    """Sum (day, rows, bytes) items, one per file, into per-day statistics sorted by day."""
    acc: dict[str, list[int]] = {}
    for day, rows, size in items:
        entry = acc.setdefault(day, [0, 0, 0])
        entry[0] += rows
        entry[1] += 1
        entry[2] += size
    return tuple(DayStats(day, r, f, b) for day, (r, f, b) in sorted(acc.items()))
