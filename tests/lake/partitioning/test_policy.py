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
from lake.partitioning.cost import CostModel, query_cost
from lake.partitioning.policy import trace_buckets
from lake.partitioning.querylog import QueryShape, Workload

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
    # Large days (no hour split here): 600 MiB per service a day, in 5 files each.
    big = dataclasses.replace(T, day_split_bytes=1 << 50)
    proposal = propose(stats([3000 * MIB] * 3, services=5), workload(SERVICE, AGGREGATES), big)
    partition_changes = [c for c in proposal.changes if c.kind == "partition"]
    assert len(partition_changes) == 1
    change = partition_changes[0]
    assert (change.action, change.after) == ("add", "service_name")
    assert change.evidence["distinct_services"] == 5
    assert change.evidence["service_filters"] == 30
    assert change.evidence["service_filter_share"] == 0.5
    assert change.evidence["workload_cost_after"] < 0.9 * change.evidence["workload_cost_before"]
    assert "30 of 60 queries" in change.reason and "would open" in change.reason
    assert proposal.target.partition == (
        LayoutField("start_time", "day"),
        LayoutField("service_name", "identity"),
    )
    # Identity-partitioned columns are not sort keys: the sort order is not touched.
    assert [c.kind for c in proposal.changes] == ["partition"]


def test_a_service_partition_that_only_adds_files_is_not_proposed() -> None:
    # 100 MiB a day is one file: five service partitions would open five files where a
    # scan of the day opens one, and sorting by service serves the service filters.
    proposal = propose(stats([100 * MIB] * 3, services=5), workload(SERVICE, AGGREGATES), T)
    assert proposal.target.partition == DAY_LAYOUT.partition
    assert proposal.target.sort == (SortKey("service_name"), SortKey("start_time"))


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
    assert [c.kind for c in proposal.changes] == ["partition", "sort", "bloom"]
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
    windows = (
        "SELECT count(*) FROM spans WHERE start_time >= now() - INTERVAL 1 HOUR",
        60,
    )
    proposal = propose(stats([2048 * MIB] * 2, services=4), workload(SERVICE, TRACE, windows), T)
    # Hour windows dominate: 85 MiB hours, in 4 trace buckets of 21 MiB (16 would go below
    # 16 MiB); service filters are served by sorting on the service (a partition per service
    # would only add files).
    assert proposal.target.partition == (
        LayoutField("start_time", "hour"),
        LayoutField("trace_id", "bucket[4]"),
    )
    assert proposal.target.sort == (SortKey("service_name"), SortKey("start_time"))
    assert proposal.target.bloom == ("trace_id",)
    assert [c.kind for c in proposal.changes] == ["partition", "partition", "sort", "bloom"]
    assert all(c.reason and c.evidence for c in proposal.changes)
    as_dict = proposal.to_dict()
    assert as_dict["target"] == str(proposal.target)
    assert "bloom filters on [trace_id]" in str(as_dict["target"])
    assert len(as_dict["changes"]) == 4  # type: ignore[arg-type]


def test_hours_are_not_split_when_full_scans_and_lookups_pay_for_them() -> None:
    # A small table (64 times smaller than the defaults aim at, thresholds scaled alike) whose
    # day just passed the split threshold, queried by windows, services, trace ids and full
    # scans: 24 files a day instead of 6 cost the lookups and scans more than windows gain.
    scaled = dataclasses.replace(
        T, day_split_bytes=8 * MIB, min_partition_bytes=MIB // 4, target_file_bytes=2 * MIB
    )
    full = ("SELECT service_name, count(*) FROM spans GROUP BY 1", 5)
    window = ("SELECT count(*) FROM spans WHERE start_time >= now() - INTERVAL 1 HOUR", 10)
    mix = workload(window, (SERVICE[0], 20), (TRACE[0], 10), full)
    proposal = propose(stats([10 * MIB] * 2, services=8), mix, scaled)
    assert proposal.target.partition == DAY_LAYOUT.partition
    assert proposal.target.bloom == ("trace_id",)
    # The same windows alone would split (they are what hourly partitions serve).
    alone = propose(stats([10 * MIB] * 2, services=8), workload(window, window), scaled)
    assert alone.target.partition == (LayoutField("start_time", "hour"),)
    (split,) = [c for c in alone.changes if c.kind == "partition"]
    assert split.evidence["files_opened_after"] < split.evidence["files_opened_before"]
    # Without a query log the size rule alone decides, as before.
    assert propose(stats([10 * MIB] * 2), Workload("spans"), scaled).target.partition == (
        LayoutField("start_time", "hour"),
    )


def test_hours_merge_back_when_they_cost_the_workload_more() -> None:
    hourly = Layout((LayoutField("start_time", "hour"),), (SortKey("start_time"),))
    scans = ("SELECT service_name, count(*) FROM spans GROUP BY 1", 30)
    merged = propose(stats([300 * MIB] * 3, layout=hourly), workload(scans), T)
    assert merged.target.partition == (LayoutField("start_time", "day"),)
    assert "cost the logged queries more" in merged.changes[0].reason


def test_bloom_filters_follow_trace_lookups() -> None:
    with_bloom = DAY_LAYOUT.with_bloom(("trace_id",))
    kept = propose(stats([20 * MIB] * 3, layout=with_bloom), workload(TRACE, SERVICE), T)
    assert kept.target.bloom == ("trace_id",)
    # Sorted by trace id, min/max statistics already skip: no filters needed.
    led = propose(stats([20 * MIB] * 3, layout=with_bloom), workload(TRACE, AGGREGATES), T)
    assert led.target.sort[0] == SortKey("trace_id") and led.target.bloom == ()
    gone = propose(stats([20 * MIB] * 3, layout=with_bloom), workload((TRACE[0], 2), AGGREGATES), T)
    (change,) = [c for c in gone.changes if c.kind == "bloom"]
    assert (change.action, change.before) == ("remove", "trace_id")
    assert gone.target.bloom == ()


def test_cost_model_counts_files_and_bytes() -> None:
    model = CostModel(file_open_bytes=4 * MIB, target_file_bytes=128 * MIB)
    data = stats([512 * MIB], services=8)
    day = Layout((LayoutField("start_time", "day"),), (SortKey("service_name"),))
    hour = Layout((LayoutField("start_time", "hour"),), (SortKey("service_name"),))
    scan, window = QueryShape(), QueryShape(range=frozenset({"start_time"}))
    assert query_cost(scan, day, data, 512 * MIB, model).files == 4
    assert query_cost(scan, hour, data, 512 * MIB, model).files == 24
    assert query_cost(window, hour, data, 512 * MIB, model).files == 1
    assert query_cost(window, hour, data, 512 * MIB, model).bytes == 512 * MIB / 24
    # Sorted by service only (time not a sort key): a window reads the whole day.
    assert query_cost(window, day, data, 512 * MIB, model).bytes == 512 * MIB
    lookup = QueryShape(equality=frozenset({"service_name"}))
    one = query_cost(lookup, day, data, 512 * MIB, model)
    assert (one.files, one.bytes) == (1, 64 * MIB)
    # A logged window width replaces the model's assumed hour: 6 hours read 6 hour partitions.
    six = QueryShape(range=frozenset({"start_time"}), window_seconds=21600.0)
    assert query_cost(six, hour, data, 512 * MIB, model).files == 6
    assert query_cost(six, hour, data, 512 * MIB, model).bytes == 512 * MIB / 4


def test_an_unpartitioned_table_gets_a_time_partition() -> None:
    flat = dataclasses.replace(stats([100 * MIB] * 2), layout=Layout())
    proposal = propose(flat, Workload("spans"), T)
    (change,) = proposal.changes
    assert (change.action, change.after) == ("add", "day(start_time)")
    assert "cannot skip files" in change.reason
