"""The layout policy on synthetic statistics and query logs (pure, no catalog)."""

from __future__ import annotations

import dataclasses

from lake.partitioning import (
    DayStats,
    Layout,
    LayoutField,
    PolicyThresholds,
    QueryRecord,
    SortKey,
    TableStats,
    propose,
    summarize,
)
from lake.partitioning.policy import trace_buckets
from lake.partitioning.querylog import Workload

MIB = 1024 * 1024
COLUMNS = ("start_time", "end_time", "trace_id", "span_id", "name", "service_name", "status_code")
DAY_LAYOUT = Layout((LayoutField("start_time", "day"),), (SortKey("start_time"),))
T = PolicyThresholds(
    day_split_bytes=512 * MIB,
    max_services=8,
    filter_share=0.2,
    min_queries=20,
    max_trace_buckets=16,
    min_partition_bytes=16 * MIB,
)


def stats(
    day_bytes: list[int], services: int = 5, layout: Layout = DAY_LAYOUT, span_days: float = 0
) -> TableStats:
    days = tuple(
        DayStats(f"2026-01-{i + 1:02d}", rows=b // 200, files=100, bytes=b)
        for i, b in enumerate(day_bytes)
    )
    span_us = int((span_days or len(day_bytes)) * 86400e6)
    return TableStats(
        table="acme.spans",
        layout=layout,
        columns=COLUMNS,
        time_column="start_time",
        spec_id=0,
        rows=sum(d.rows for d in days),
        files=sum(d.files for d in days),
        bytes=sum(d.bytes for d in days),
        days=days,
        distinct_services=services,
        time_min_us=1_767_225_600_000_000,
        time_max_us=1_767_225_600_000_000 + span_us,
    )


def workload(*queries: tuple[str, int]) -> Workload:
    records = [QueryRecord(sql, elapsed_ms=50.0) for sql, n in queries for _ in range(n)]
    return summarize(records, "spans", COLUMNS)


AGGREGATES = (
    "SELECT date_trunc('hour', start_time), count(*) FROM spans "
    "WHERE start_time >= now() - INTERVAL 1 DAY GROUP BY 1",
    30,
)
SERVICE = ("SELECT * FROM spans WHERE service_name = 'checkout' AND start_time > now()", 30)
TRACE = ("SELECT * FROM spans WHERE trace_id = '0af7651916cd43dd8448eb211c80319c'", 30)


def test_nothing_is_proposed_for_a_balanced_table() -> None:
    proposal = propose(stats([100 * MIB] * 7), workload(AGGREGATES), T)
    assert proposal.empty
    assert proposal.target == proposal.current


def test_large_days_split_into_hours() -> None:
    proposal = propose(stats([100 * MIB, 900 * MIB, 300 * MIB]), workload(AGGREGATES), T)
    assert [c.kind for c in proposal.changes] == ["partition"]
    change = proposal.changes[0]
    assert (change.action, change.before, change.after) == (
        "replace",
        "day(start_time)",
        "hour(start_time)",
    )
    assert change.evidence["largest_day"] == "2026-01-02"
    assert change.evidence["largest_day_bytes"] == 900 * MIB
    assert "900.0 MiB" in change.reason and "1/24" in change.reason
    assert proposal.target.partition == (LayoutField("start_time", "hour"),)


def test_a_young_busy_table_is_split_by_its_projected_daily_volume() -> None:
    # Six hours of data at 200 MiB per hour: no full day yet, but a day will hold 4.8 GiB.
    young = stats([1200 * MIB], span_days=0.25)
    proposal = propose(young, workload(AGGREGATES), T)
    assert proposal.target.partition == (LayoutField("start_time", "hour"),)
    assert proposal.changes[0].evidence["projected_day_bytes"] == 4800 * MIB


def test_hours_merge_back_into_days_only_well_below_the_split_threshold() -> None:
    hourly = Layout((LayoutField("start_time", "hour"),), (SortKey("start_time"),))
    merged = propose(stats([50 * MIB] * 3, layout=hourly), workload(AGGREGATES), T)
    assert merged.target.partition == (LayoutField("start_time", "day"),)
    assert "hourly partitions would stay small" in merged.changes[0].reason
    # Between a quarter of the threshold and the threshold: keep hours (no flapping).
    kept = propose(stats([300 * MIB] * 3, layout=hourly), workload(AGGREGATES), T)
    assert kept.empty


def test_few_frequently_filtered_services_get_identity_partitions() -> None:
    proposal = propose(stats([100 * MIB] * 3, services=5), workload(SERVICE, AGGREGATES), T)
    partition_changes = [c for c in proposal.changes if c.kind == "partition"]
    assert len(partition_changes) == 1
    change = partition_changes[0]
    assert (change.action, change.after) == ("add", "service_name")
    assert change.evidence["distinct_services"] == 5
    assert change.evidence["service_filters"] == 30
    assert change.evidence["service_filter_share"] == 0.5
    assert "30 of 60 queries" in change.reason
    assert proposal.target.partition == (
        LayoutField("start_time", "day"),
        LayoutField("service_name", "identity"),
    )
    # Identity-partitioned columns are not sort keys: the sort order is not touched.
    assert [c.kind for c in proposal.changes] == ["partition"]


def test_many_services_are_not_partitioned_but_sorted() -> None:
    proposal = propose(stats([100 * MIB] * 3, services=200), workload(SERVICE, AGGREGATES), T)
    assert proposal.target.partition == DAY_LAYOUT.partition
    assert proposal.target.sort == (SortKey("service_name"), SortKey("start_time"))
    (change,) = proposal.changes
    assert change.kind == "sort"
    assert (change.before, change.after) == ("start_time", "service_name, start_time")
    assert change.evidence["service_name_equality_filters"] == 30


def test_rare_service_filters_change_nothing() -> None:
    rare = ("SELECT * FROM spans WHERE service_name = 'checkout'", 2)
    assert propose(stats([100 * MIB] * 3), workload(rare, AGGREGATES), T).empty


def test_too_few_queries_are_not_evidence() -> None:
    assert propose(
        stats([100 * MIB] * 3), workload(("SELECT * FROM spans WHERE service_name = 'a'", 5)), T
    ).empty


def test_exploding_service_count_removes_the_service_partition() -> None:
    by_service = Layout(
        (LayoutField("start_time", "day"), LayoutField("service_name")), (SortKey("start_time"),)
    )
    proposal = propose(stats([100 * MIB] * 3, services=40, layout=by_service), Workload("spans"), T)
    (change,) = proposal.changes
    assert (change.kind, change.action, change.before) == ("partition", "remove", "service_name")
    assert "40 services" in change.reason
    assert proposal.target.partition == (LayoutField("start_time", "day"),)


def test_frequent_trace_lookups_get_trace_buckets_and_trace_sort() -> None:
    proposal = propose(stats([100 * MIB] * 3), workload(TRACE, AGGREGATES), T)
    kinds = {(c.kind, c.after) for c in proposal.changes}
    assert ("partition", "bucket[4](trace_id)") in kinds
    assert ("sort", "trace_id") in kinds
    bucket = next(c for c in proposal.changes if c.kind == "partition")
    assert bucket.evidence["trace_lookups"] == 30
    assert bucket.evidence["buckets"] == 4
    assert "look up trace_id" in bucket.reason
    assert proposal.target.partition[-1] == LayoutField("trace_id", "bucket[4]")


def test_bucket_count_keeps_buckets_large_enough() -> None:
    assert trace_buckets(0, T) == 1
    assert trace_buckets(20 * MIB, T) == 1
    assert trace_buckets(64 * MIB, T) == 4
    assert trace_buckets(100 * MIB, T) == 4
    assert trace_buckets(100_000 * MIB, T) == 16


def test_partitions_that_would_be_too_small_are_not_proposed() -> None:
    # 8 services share 100 MiB a day: 12.5 MiB per service partition, below 16 MiB.
    proposal = propose(stats([100 * MIB] * 3, services=8), workload(SERVICE, TRACE), T)
    assert [c.kind for c in proposal.changes] == ["partition", "sort"]
    bucket = proposal.changes[0]
    assert bucket.after == "bucket[4](trace_id)"
    # As many service filters as trace lookups: the lower-cardinality column leads the sort.
    assert proposal.target.sort == (SortKey("service_name"), SortKey("start_time"))
    # On a small table even the buckets would be too small: only the sort order changes, led by
    # the more frequent filter.
    small = propose(stats([20 * MIB] * 3, services=8), workload(SERVICE, TRACE, TRACE), T)
    assert small.target.partition == DAY_LAYOUT.partition
    assert small.target.sort == (SortKey("trace_id"),)
    assert small.changes[0].reason.startswith("60 of 90 queries filter trace_id")


def test_all_rules_combine_and_every_change_has_a_reason() -> None:
    proposal = propose(stats([2048 * MIB] * 2, services=4), workload(SERVICE, TRACE), T)
    # hour: 85 MiB partitions; per service: 21 MiB; buckets would go below 16 MiB.
    assert proposal.target.partition == (
        LayoutField("start_time", "hour"),
        LayoutField("service_name"),
    )
    assert proposal.target.sort == (SortKey("trace_id"),)
    assert all(c.reason and c.evidence for c in proposal.changes)
    service = next(c for c in proposal.changes if c.after == "service_name")
    assert service.evidence["projected_partition_bytes"] == int(2048 * MIB / 24 / 4)
    as_dict = proposal.to_dict()
    assert as_dict["target"] == str(proposal.target)
    assert len(as_dict["changes"]) == 3  # type: ignore[arg-type]


def test_an_unpartitioned_table_gets_a_time_partition() -> None:
    flat = dataclasses.replace(stats([100 * MIB] * 2), layout=Layout())
    proposal = propose(flat, Workload("spans"), T)
    (change,) = proposal.changes
    assert (change.action, change.after) == ("add", "day(start_time)")
    assert "cannot skip files" in change.reason
