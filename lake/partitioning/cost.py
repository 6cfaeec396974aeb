"""What a query workload would cost under a layout: files opened and bytes read (pure).

A scan pays for every file it opens (a request, the footer, the schema) and for the bytes it
reads. Like Spark's ``openCostInBytes``, the open cost is counted in bytes: the bytes a scan
could read in the time one open takes. It is a property of the engine and the storage, not of
the table, so it does not shrink with the data: on a small table many small files cost more
than the pruning they buy, on a large one they do not.

The model, for one busy day of ``D`` bytes (full-table scans are a multiple of it):

- **partitions** per day: 24 for ``hour(time)``, 1 for ``day(time)``, times the buckets of a
  ``bucket[N]`` field, times the services of ``identity(service_name)``;
- **files** per partition once compacted: its bytes over the target file size, at least one;
- a query reads the **partitions** its filters select: a time range ``ceil(window / span)`` of
  the time partitions (the window is the width the query daemon logged for the query, rounded
  up to a standard width; ``time_window_seconds``, a typical dashboard window, for queries
  logged without one); an equality filter on a partitioned column 1/N of them;
- within a partition, data is sorted (compaction honors the sort order) and files are cut in
  that order: an equality filter on the **leading sort key** opens ``ceil(files / distinct)``
  files and reads about 1/distinct of the bytes (row groups skip by min/max); a time range on a
  time sort key reads the window's share of the bytes, files still all opened, but at least one
  row group of each run of the keys before it (``ROW_GROUPS_PER_FILE`` per file: compaction's
  default) unless those are filtered by value;
- an equality filter on a column with **Bloom filters** reads only the filters and the row
  group holding the value (``BLOOM_READ_SHARE`` of the bytes), files still all opened.

cost = files opened x open cost + bytes read, summed over the logged queries. The policy compares
layouts by it; only differences matter, so the approximations apply to both sides alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lake.partitioning.querylog import QueryShape, Workload
from lake.partitioning.stats import Layout, TableStats

SERVICE_COLUMN = "service_name"
TRACE_COLUMN = "trace_id"
#: Seconds one partition of each time transform spans.
TIME_SPANS = {"hour": 3600.0, "day": 86400.0, "month": 30 * 86400.0, "year": 365 * 86400.0}
#: Share of a file's bytes a Bloom-filtered lookup reads: the filters and one row group of the
#: dozen or so a compacted file holds.
BLOOM_READ_SHARE = 0.1
#: Row groups per compacted file (lake.compaction's default): the granularity of skipping.
ROW_GROUPS_PER_FILE = 16
#: Distinct values assumed for a column the statistics say nothing about.
UNKNOWN_DISTINCT = 100.0


@dataclass(frozen=True)
class CostModel:
    """The engine and compaction constants the cost of a layout depends on."""

    #: Bytes a scan reads in the time it takes to open one file.
    file_open_bytes: int = 4 * 1024 * 1024
    #: Size compaction writes files at: a partition holds ceil(bytes / target) files.
    target_file_bytes: int = 128 * 1024 * 1024
    #: Assumed width of a time-range filter.
    time_window_seconds: float = 3600.0


@dataclass(frozen=True)
class LayoutCost:
    """Estimated cost of a workload under one layout (per busy day)."""

    files: float
    bytes: float
    cost: float


def _distinct(column: str, stats: TableStats) -> float:
    if column == SERVICE_COLUMN and stats.distinct_services:
        return float(stats.distinct_services)
    if column == TRACE_COLUMN:
        return max(1.0, stats.rows / 4)  # a trace has a few spans
    return UNKNOWN_DISTINCT


def _partition_counts(layout: Layout, stats: TableStats) -> dict[str, float]:
    """Per partition field (by its string form): how many partitions it splits a day into."""
    counts: dict[str, float] = {}
    for f in layout.partition:
        if f.is_time and f.source == stats.time_column:
            counts[str(f)] = max(1.0, 86400.0 / TIME_SPANS.get(f.transform, 86400.0))
        elif f.is_bucket:
            counts[str(f)] = float(int(f.transform[len("bucket[") : -1]))
        elif f.transform == "identity":
            counts[str(f)] = _distinct(f.source, stats)
    return counts


def query_cost(
    shape: QueryShape, layout: Layout, stats: TableStats, day_bytes: float, model: CostModel
) -> LayoutCost:
    """Files opened and bytes read by one query of ``shape`` over a day of ``day_bytes``."""
    counts = _partition_counts(layout, stats)
    partitions = math.prod(counts.values()) if counts else 1.0
    partition_bytes = day_bytes / partitions
    files_per_partition = max(1.0, math.ceil(partition_bytes / max(1, model.target_file_bytes)))
    read_partitions = partitions
    time_column = stats.time_column
    window = shape.window_seconds or model.time_window_seconds
    for f in layout.partition:
        n = counts.get(str(f))
        if n is None:
            continue
        if f.is_time and f.source == time_column and time_column in shape.range:
            span = TIME_SPANS.get(f.transform, 86400.0)
            read_partitions *= min(n, math.ceil(window / span)) / n
        elif f.source in shape.equality and (f.is_bucket or f.transform == "identity"):
            read_partitions *= 1.0 / n
    read_partitions = max(1.0, read_partitions)
    files = files_per_partition
    share = 1.0
    partitioned = {f.source for f in layout.partition}
    lead = layout.sort[0].source if layout.sort else None
    if lead is not None and lead in shape.equality and lead not in partitioned:
        distinct = _distinct(lead, stats)
        files = max(1.0, math.ceil(files_per_partition / distinct))
        share /= distinct
    keys = [k.source for k in layout.sort]
    if time_column in shape.range and time_column in keys:
        time_partitioned = layout.time_field(time_column)
        span = TIME_SPANS.get(time_partitioned.transform, 86400.0) if time_partitioned else 86400.0
        # Each run of the keys sorted before time is time-ordered: a window reads at least one
        # row group of every run it cannot rule out by value.
        runs = math.prod(
            _distinct(k, stats)
            for k in keys[: keys.index(time_column)]
            if k not in shape.equality and k not in partitioned
        )
        floor = min(1.0, runs / ROW_GROUPS_PER_FILE)
        share *= max(floor, min(1.0, window / span))
    if any(c in layout.bloom for c in shape.equality):
        share *= BLOOM_READ_SHARE
    total_files = read_partitions * files
    total_bytes = read_partitions * partition_bytes * share
    return LayoutCost(total_files, total_bytes, total_files * model.file_open_bytes + total_bytes)


def workload_cost(
    workload: Workload, layout: Layout, stats: TableStats, day_bytes: float, model: CostModel
) -> LayoutCost:
    """The summed cost of every logged query of the workload under ``layout``."""
    files = size = 0.0
    for shape, count in workload.shapes.items():
        one = query_cost(shape, layout, stats, day_bytes, model)
        files += count * one.files
        size += count * one.bytes
    return LayoutCost(files, size, files * model.file_open_bytes + size)
