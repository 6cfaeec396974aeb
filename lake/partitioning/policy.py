"""The layout policy: from table statistics and a query workload to a layout proposal (pure).

The rules are the ones a data engineer applies by hand, each with a threshold from settings:

- **Workload cost.** With enough logged queries, every partition change must also cut the
  workload's estimated cost (files opened x ``file_open_bytes`` + bytes read, see
  :mod:`lake.partitioning.cost`) by ``min_cost_gain``: finer partitions help the queries that
  filter on them and cost every other query the extra files it opens.
- **Time granularity.** ``day`` → ``hour`` on the event-time column once one day holds more than
  ``day_split_bytes`` (an hour-window query then reads 1/24 of it) and, given a workload, the
  time-filtered queries gain more than full scans and lookups lose; back to ``day`` when the
  largest day has shrunk below a quarter of that (the gap keeps the layout from flapping) or the
  hours cost the workload more than days would; a table not partitioned by time at all gets
  ``day`` (or ``hour`` if already large).
- **Service.** ``identity(service_name)`` when a table has few services (``<= max_services``) and
  at least ``filter_share`` of its queries filter on the service; removed again if the number of
  services grows past twice the limit (partitions would become tiny).
- **Trace lookups.** ``bucket[N](trace_id)`` when at least ``filter_share`` of the queries look
  traces up by id.
- **Partition size.** A field is only added while a busy day's partitions stay at least
  ``min_partition_bytes`` on average: N trace buckets is the largest power of two that keeps
  them so, and a service or bucket field that would fragment the data is not proposed (the sort
  order still serves those filters). Over-partitioned tables scan many small files.
- **Sort order.** The most frequently equality-filtered column that is not identity-partitioned
  leads (ties go to the lower cardinality), then the time column (not after ``trace_id``, whose
  ordering leaves no room for time clustering). Only the leading key clusters well, so one is
  chosen. Sorting keeps the min/max ranges of compacted files and row groups narrow, so file and
  row-group pruning works for that filter.

- **Bloom filters.** On ``trace_id`` when at least ``filter_share`` of the queries look traces
  up by id and the data is not sorted by it (removed below half that share): compacted files
  then carry Parquet Bloom filters, and a lookup skips every row group without the id.

Nothing is proposed without enough evidence (``min_queries`` logged queries for workload rules).
Every change carries a human-readable reason and the numbers behind it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from lake.partitioning.cost import SERVICE_COLUMN, TRACE_COLUMN, CostModel, workload_cost
from lake.partitioning.querylog import Workload
from lake.partitioning.stats import Layout, LayoutField, SortKey, TableStats

Evidence = Mapping[str, int | float | str]


@dataclass(frozen=True)
class PolicyThresholds:
    """The knobs of the layout policy (see the module docs for what each rule does)."""

    day_split_bytes: int = 512 * 1024 * 1024
    max_services: int = 16
    filter_share: float = 0.2
    min_queries: int = 20
    max_trace_buckets: int = 16
    #: A partition field is only added if partitions stay at least this large on average.
    min_partition_bytes: int = 16 * 1024 * 1024
    #: The cost model's constants (see lake.partitioning.cost).
    file_open_bytes: int = 4 * 1024 * 1024
    target_file_bytes: int = 128 * 1024 * 1024
    time_window_seconds: float = 3600.0
    #: With a workload logged, a partition change must cut its estimated cost by this share.
    min_cost_gain: float = 0.1

    @property
    def cost_model(self) -> CostModel:
        return CostModel(self.file_open_bytes, self.target_file_bytes, self.time_window_seconds)


@dataclass(frozen=True)
class LayoutChange:
    """One proposed change to a partition spec or sort order, with why and on what evidence."""

    kind: str  # "partition", "sort" or "bloom"
    action: str  # "add", "remove" or "replace"
    before: str | None
    after: str | None
    reason: str
    evidence: Evidence = field(default_factory=dict)

    def describe(self) -> str:
        if self.action == "replace":
            what = f"{self.kind}: {self.before} -> {self.after}"
        elif self.action == "add":
            what = f"{self.kind}: add {self.after}"
        else:
            what = f"{self.kind}: remove {self.before}"
        return f"{what} ({self.reason})"

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "action": self.action,
            "before": self.before,
            "after": self.after,
            "reason": self.reason,
            "evidence": dict(self.evidence),
        }


@dataclass(frozen=True)
class Proposal:
    """A target layout for one table and the changes that lead there from its current one."""

    table: str
    current: Layout
    target: Layout
    changes: tuple[LayoutChange, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.changes

    def to_dict(self) -> dict[str, object]:
        return {
            "table": self.table,
            "current": str(self.current),
            "target": str(self.target),
            "changes": [c.to_dict() for c in self.changes],
        }


def _size(n: float) -> str:
    """Bytes for people: 900.0 MiB, 21.3 KiB."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def projected_day_bytes(stats: TableStats) -> int:
    """Bytes a full day would hold at the observed data rate (0 for less than an hour of data).

    A young table has no full day yet; projecting its rate lets a busy table get hourly
    partitions in its first hours rather than after its first large day.
    """
    span = stats.time_span_seconds
    if span < 3600:
        return 0
    return int(stats.bytes / span * 86400)


def day_bytes(stats: TableStats) -> int:
    """The volume of a busy day: the largest day seen, or the projection of the data rate."""
    largest = stats.largest_day
    return max(largest.bytes if largest else 0, projected_day_bytes(stats))


def fanout(layout: Layout, stats: TableStats) -> float:
    """Partitions a day of data is split into under ``layout`` (unknown identities count 1)."""
    n = 1.0
    for f in layout.partition:
        if f.transform == "hour":
            n *= 24
        elif f.is_bucket:
            n *= int(f.transform[len("bucket[") : -1])
        elif f.transform == "identity" and f.source == SERVICE_COLUMN:
            n *= max(1, stats.distinct_services or 1)
    return n


def partition_bytes(layout: Layout, stats: TableStats) -> int:
    """Average bytes of one partition of a busy day under ``layout``."""
    return int(day_bytes(stats) / fanout(layout, stats))


def _cost_gate(
    stats: TableStats,
    workload: Workload,
    before: Layout,
    after: Layout,
    t: PolicyThresholds,
    evidence: dict[str, int | float | str],
) -> bool | None:
    """Whether ``after`` cuts the workload's estimated cost by ``min_cost_gain`` (None: too few
    logged queries to tell); the estimates go into ``evidence``."""
    if workload.queries < t.min_queries or not workload.shapes:
        return None
    day = day_bytes(stats)
    old = workload_cost(workload, before, stats, day, t.cost_model)
    new = workload_cost(workload, after, stats, day, t.cost_model)
    evidence["workload_cost_before"] = round(old.cost)
    evidence["workload_cost_after"] = round(new.cost)
    evidence["files_opened_before"] = round(old.files)
    evidence["files_opened_after"] = round(new.files)
    evidence["file_open_bytes"] = t.file_open_bytes
    return new.cost <= (1.0 - t.min_cost_gain) * old.cost


def _cost_words(evidence: Evidence) -> str:
    if "workload_cost_before" not in evidence:
        return ""
    before, after = float(evidence["workload_cost_before"]), float(evidence["workload_cost_after"])
    return (
        f"; the logged queries would open {evidence['files_opened_after']} files instead of "
        f"{evidence['files_opened_before']} (estimated cost {_size(after)} vs {_size(before)})"
    )


def _time_rule(
    stats: TableStats, workload: Workload, layout: Layout, t: PolicyThresholds
) -> tuple[Layout, LayoutChange | None]:
    column = stats.time_column
    if column is None or column not in stats.columns or stats.rows == 0:
        return layout, None
    current = layout.time_field(column)
    largest = stats.largest_day
    largest_bytes = day_bytes(stats)
    evidence: dict[str, int | float | str] = {
        "largest_day": largest.day if largest else "",
        "largest_day_bytes": largest.bytes if largest else 0,
        "largest_day_rows": largest.rows if largest else 0,
        "projected_day_bytes": projected_day_bytes(stats),
        "day_split_bytes": t.day_split_bytes,
        "days": len(stats.days),
    }
    if current is None:
        transform = "hour" if largest_bytes >= t.day_split_bytes else "day"
        new = LayoutField(column, transform)
        reason = (
            f"{column} is not partitioned by time, so time-window filters cannot skip files; "
            f"largest day holds {_size(largest_bytes)}"
        )
        return layout.with_field(new), LayoutChange(
            "partition", "add", None, str(new), reason, evidence
        )
    if current.transform in {"day", "month", "year"} and largest_bytes >= t.day_split_bytes:
        new = LayoutField(column, "hour")
        target = layout.without(current).with_field(new)
        # Hourly files are smaller and more: worth it only if the logged queries' time windows
        # gain more than their full scans and lookups lose.
        if _cost_gate(stats, workload, layout, target, t, evidence) is False:
            return layout, None
        reason = (
            f"a day holds {_size(largest_bytes)} (>= {_size(t.day_split_bytes)}): "
            f"hourly partitions let an hour-window query read about 1/24 of a day"
            + _cost_words(evidence)
        )
        return target, LayoutChange(
            "partition", "replace", str(current), str(new), reason, evidence
        )
    if current.transform == "hour" and len(stats.days) >= 1:
        new = LayoutField(column, "day")
        target = layout.without(current).with_field(new)
        if largest_bytes < t.day_split_bytes / 4:
            reason = (
                f"the largest day holds only {_size(largest_bytes)} "
                f"(< 1/4 of {_size(t.day_split_bytes)}): hourly partitions would stay small files"
            )
        elif _cost_gate(stats, workload, layout, target, t, evidence):
            reason = "hourly files cost the logged queries more than they prune" + _cost_words(
                evidence
            )
        else:
            return layout, None
        return target, LayoutChange(
            "partition", "replace", str(current), str(new), reason, evidence
        )
    return layout, None


def _service_rule(
    stats: TableStats, workload: Workload, layout: Layout, t: PolicyThresholds
) -> tuple[Layout, LayoutChange | None]:
    if SERVICE_COLUMN not in stats.columns or stats.distinct_services is None:
        return layout, None
    current = layout.field_on(SERVICE_COLUMN, transform_prefix="identity")
    usage = workload.usage(SERVICE_COLUMN)
    share = workload.share(usage.filtered)
    evidence: dict[str, int | float | str] = {
        "distinct_services": stats.distinct_services,
        "max_services": t.max_services,
        "queries": workload.queries,
        "service_filters": usage.filtered,
        "service_filter_share": round(share, 3),
        "filter_share": t.filter_share,
    }
    with_service = layout.with_field(LayoutField(SERVICE_COLUMN, "identity"))
    evidence["projected_partition_bytes"] = partition_bytes(
        layout if current is not None else with_service, stats
    )
    evidence["min_partition_bytes"] = t.min_partition_bytes
    if current is not None:
        if stats.distinct_services > 2 * t.max_services:
            reason = (
                f"{stats.distinct_services} services (> 2 x {t.max_services}): one partition per "
                f"service would fragment the table into small files"
            )
            return layout.without(current), LayoutChange(
                "partition", "remove", str(current), None, reason, evidence
            )
        return layout, None
    if (
        workload.queries >= t.min_queries
        and share >= t.filter_share
        and 0 < stats.distinct_services <= t.max_services
        and partition_bytes(with_service, stats) >= t.min_partition_bytes
        and _cost_gate(stats, workload, layout, with_service, t, evidence) is not False
    ):
        new = LayoutField(SERVICE_COLUMN, "identity")
        reason = (
            f"{usage.filtered} of {workload.queries} queries ({share:.0%}) filter on "
            f"{SERVICE_COLUMN} and there are only {stats.distinct_services} services: "
            f"a service filter then reads only that service's files" + _cost_words(evidence)
        )
        return with_service, LayoutChange("partition", "add", None, str(new), reason, evidence)
    return layout, None


def trace_buckets(base_partition_bytes: int, t: PolicyThresholds) -> int:
    """Buckets per partition: a power of two keeping buckets >= min_partition_bytes (max cap);
    below 2 there is no point in bucketing."""
    room = min(t.max_trace_buckets, base_partition_bytes // max(1, t.min_partition_bytes))
    return 2 ** int(math.log2(room)) if room >= 2 else 1


def _trace_rule(
    stats: TableStats, workload: Workload, layout: Layout, t: PolicyThresholds
) -> tuple[Layout, LayoutChange | None]:
    if TRACE_COLUMN not in stats.columns or layout.field_on(TRACE_COLUMN) is not None:
        return layout, None
    usage = workload.usage(TRACE_COLUMN)
    share = workload.share(usage.equality)
    if workload.queries < t.min_queries or share < t.filter_share:
        return layout, None
    base = partition_bytes(layout, stats)
    n = trace_buckets(base, t)
    if n < 2:
        return layout, None
    new = LayoutField(TRACE_COLUMN, f"bucket[{n}]")
    evidence: dict[str, int | float | str] = {
        "queries": workload.queries,
        "trace_lookups": usage.equality,
        "trace_lookup_share": round(share, 3),
        "filter_share": t.filter_share,
        "buckets": n,
        "partition_bytes_before": base,
        "min_partition_bytes": t.min_partition_bytes,
    }
    if _cost_gate(stats, workload, layout, layout.with_field(new), t, evidence) is False:
        return layout, None
    reason = (
        f"{usage.equality} of {workload.queries} queries ({share:.0%}) look up {TRACE_COLUMN} by "
        f"value: {n} hash buckets let a lookup read 1/{n} of each time partition"
        + _cost_words(evidence)
    )
    return layout.with_field(new), LayoutChange(
        "partition", "add", None, str(new), reason, evidence
    )


def _sort_rule(
    stats: TableStats, workload: Workload, layout: Layout, t: PolicyThresholds
) -> tuple[Layout, LayoutChange | None]:
    if workload.queries < t.min_queries:
        return layout, None
    identity = {f.source for f in layout.partition if f.transform == "identity"}
    candidates: list[tuple[float, str, int]] = []
    for column, usage in workload.columns.items():
        if column in identity or column == stats.time_column or column not in stats.columns:
            continue
        if workload.share(usage.equality) < t.filter_share:
            continue
        # Lowest cardinality first: a high-cardinality leading key leaves later keys unclustered.
        if column == SERVICE_COLUMN and stats.distinct_services is not None:
            cardinality = float(stats.distinct_services)
        elif column == TRACE_COLUMN:
            cardinality = math.inf
        else:
            cardinality = 1e6
        candidates.append((cardinality, column, usage.equality))
    if not candidates:
        return layout, None
    # One leading key: only the first sort key clusters well. The most used filter wins; on a
    # tie the lower cardinality (a high-cardinality leading key leaves nothing to cluster after).
    candidates.sort(key=lambda c: (-c[2], c[0], c[1]))
    lead = candidates[0][1]
    keys = [SortKey(lead)]
    if lead != TRACE_COLUMN and stats.time_column in stats.columns:
        keys.append(SortKey(stats.time_column))
    target = tuple(keys)
    if target == layout.sort:
        return layout, None
    evidence: dict[str, int | float | str] = {"queries": workload.queries}
    for _, column, count in candidates:
        evidence[f"{column}_equality_filters"] = count
    count = candidates[0][2]
    reason = (
        f"{count} of {workload.queries} queries filter {lead} by value: files sorted by it keep "
        f"narrow min/max ranges on it, so scans skip files and row groups"
    )
    before = layout.describe_sort() if layout.sort else None
    after = ", ".join(str(k) for k in target)
    return layout.with_sort(target), LayoutChange(
        "sort", "replace" if before else "add", before, after, reason, evidence
    )


def _bloom_rule(
    stats: TableStats, workload: Workload, layout: Layout, t: PolicyThresholds
) -> tuple[Layout, LayoutChange | None]:
    """Bloom filters on trace ids when traces are looked up by id: min/max statistics of random
    ids rule out nothing, a Bloom filter rules out almost every row group (for about 1.2 bytes
    per distinct value at 1 % false positives)."""
    if TRACE_COLUMN not in stats.columns or workload.queries < t.min_queries:
        return layout, None
    usage = workload.usage(TRACE_COLUMN)
    share = workload.share(usage.equality)
    evidence: dict[str, int | float | str] = {
        "queries": workload.queries,
        "trace_lookups": usage.equality,
        "trace_lookup_share": round(share, 3),
        "filter_share": t.filter_share,
    }
    has = TRACE_COLUMN in layout.bloom
    # Sorted by trace id, files and row groups hold narrow id ranges: min/max already skip.
    leads = bool(layout.sort) and layout.sort[0].source == TRACE_COLUMN
    if not has and share >= t.filter_share and not leads:
        reason = (
            f"{usage.equality} of {workload.queries} queries ({share:.0%}) look up "
            f"{TRACE_COLUMN} by value: Bloom filters in compacted files let a lookup skip the "
            f"row groups without that id, which min/max statistics of random ids cannot"
        )
        after = (*layout.bloom, TRACE_COLUMN)
        return layout.with_bloom(after), LayoutChange(
            "bloom", "add", None, TRACE_COLUMN, reason, evidence
        )
    if has and (share < t.filter_share / 2 or leads):
        reason = (
            f"only {usage.equality} of {workload.queries} queries ({share:.0%}) look up "
            f"{TRACE_COLUMN} by value: its Bloom filters no longer pay for themselves"
        )
        after = tuple(c for c in layout.bloom if c != TRACE_COLUMN)
        return layout.with_bloom(after), LayoutChange(
            "bloom", "remove", TRACE_COLUMN, None, reason, evidence
        )
    return layout, None


def propose(
    stats: TableStats, workload: Workload, thresholds: PolicyThresholds | None = None
) -> Proposal:
    """The layout ``stats.table`` should have, given its data and how it is queried."""
    t = thresholds or PolicyThresholds()
    layout = stats.layout
    changes: list[LayoutChange] = []
    layout, change = _time_rule(stats, workload, layout, t)
    changes += [change] if change else []
    layout, change = _service_rule(stats, workload, layout, t)
    changes += [change] if change else []
    layout, change = _trace_rule(stats, workload, layout, t)
    changes += [change] if change else []
    layout, change = _sort_rule(stats, workload, layout, t)
    changes += [change] if change else []
    layout, change = _bloom_rule(stats, workload, layout, t)
    changes += [change] if change else []
    return Proposal(stats.table, stats.layout, layout, tuple(changes))
