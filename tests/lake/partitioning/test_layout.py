"""Layout adaptation on a real catalog while the lake writer appends (integration)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from pathlib import Path

import pytest
from pyiceberg.expressions import And, EqualTo, GreaterThanOrEqual, LessThan
from pyiceberg.table import Table

from emberlake.settings import LakeSettings, Settings
from lake.catalog import open_catalog
from lake.compaction import CompactionOptions, compact_table
from lake.layout import (
    LAYOUT_LOG_PROPERTY,
    apply_proposal,
    collect_stats,
    layout_changes,
    layout_of,
    propose_layout,
    read_query_log,
)
from lake.partitioning import LayoutChange, LayoutField, SortKey
from queryd.querylog import JsonLinesQueryLog, QueryRecord
from tests.lake.spantables import (
    BASE_TIME,
    OFFSET_KEY,
    SERVICES,
    LiveAppender,
    SpanAppender,
    create_spans,
    seqs_in,
    span_batch,
)

pytestmark = pytest.mark.integration


def layout_settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=str(tmp_path / "data"),
        lake=LakeSettings(
            layout_day_split_bytes=20_000,
            layout_max_services=8,
            layout_min_queries=10,
            layout_min_partition_bytes=1,
            layout_max_trace_buckets=4,
            # Tiny tables: file opens at (almost) no cost, so the workload's filters decide.
            layout_file_open_bytes=1,
            compact_target_file_bytes=8 * 1024 * 1024,
            compact_small_file_bytes=1024 * 1024,
            compact_min_files=4,
        ),
    )


def log_queries(settings: Settings, tenant: str, sqls: list[str]) -> None:
    """Queries as the query daemon logs them."""
    querylog = JsonLinesQueryLog(settings.data_path / "querylog")
    for sql in sqls:
        querylog.record(QueryRecord(tenant, sql, ok=True, elapsed_ms=42.0, tables=["spans"]))


def files_of_spec(table: Table, spec_id: int, row_filter: object = None) -> int:
    scan = table.scan(row_filter=row_filter) if row_filter is not None else table.scan()
    return sum(1 for t in scan.plan_files() if t.file.spec_id == spec_id)


def hour_window(hours_after_base: int) -> And:
    start = BASE_TIME + dt.timedelta(hours=hours_after_base)
    return And(
        GreaterThanOrEqual("start_time", start.isoformat()),
        LessThan("start_time", (start + dt.timedelta(hours=1)).isoformat()),
    )


def test_spec_evolves_while_the_writer_appends_and_both_specs_prune(tmp_path: Path) -> None:
    settings = layout_settings(tmp_path)
    table = create_spans(open_catalog(settings))
    first = SpanAppender(open_catalog(settings))
    # 40 hours of spans over two days, one service per batch (one batch an hour).
    for i in range(40):
        first.append(span_batch(range(i * 20, i * 20 + 20), SERVICES[i % 5]))
    log_queries(
        settings,
        "acme",
        [
            f"SELECT count(*) FROM spans WHERE service_name = '{SERVICES[i % 5]}'"
            " AND start_time >= now() - INTERVAL 1 HOUR"
            for i in range(20)
        ]
        + [
            "SELECT name, avg(duration_ms) FROM spans"
            " WHERE start_time >= now() - INTERVAL 1 HOUR GROUP BY name"
        ]
        * 10,
    )
    assert len(list(read_query_log(settings, "acme"))) == 30

    live = SpanAppender(open_catalog(settings))
    live.offset = first.offset
    appender = LiveAppender(live, first_seq=800, batch=20, pause=0.1)
    appender.start()
    appender.wait_for_batches(3)
    table.refresh()
    proposal = propose_layout(settings, "acme", table)
    # Time windows dominate: hours. Service filters are served by the sort order already (the
    # table is sorted by service), so the policy adds no service partition; one is added by
    # hand here, to evolve two fields in one commit.
    assert proposal.target.partition == (LayoutField("start_time", "hour"),)
    by_hand = LayoutChange("partition", "add", None, "service_name", "by hand", {"n": 1})
    proposal = dataclasses.replace(
        proposal,
        target=proposal.target.with_field(LayoutField("service_name")),
        changes=(*proposal.changes, by_hand),
    )
    applied = apply_proposal(table, proposal, source="test")
    # The writer keeps going under the new spec.
    after_apply = appender.batches
    appender.wait_for_batches(after_apply + 5)
    committed = appender.finish()

    table.refresh()
    assert sorted(seqs_in(table)) == list(range(800 + len(committed)))
    assert table.properties[OFFSET_KEY] == str(live.offset)
    assert layout_of(table).describe_partition() == "hour(start_time), service_name"
    assert [c["after"] for c in applied] == ["hour(start_time)", "service_name"]
    log = layout_changes(table)
    assert [e["after"] for e in log] == ["hour(start_time)", "service_name"]
    assert all(e["reason"] and e["evidence"] and e["source"] == "test" for e in log)
    assert "hourly partitions" in log[0]["reason"]
    assert log[0]["evidence"]["workload_cost_after"] < log[0]["evidence"]["workload_cost_before"]

    old_spec, new_spec = 0, table.spec().spec_id
    old_total, new_total = files_of_spec(table, old_spec), files_of_spec(table, new_spec)
    assert old_total >= 40 and new_total >= 5
    # Old data stays pruned under the old spec: by day partition plus file bounds, and by
    # service through the files' column bounds.
    assert 0 < files_of_spec(table, old_spec, hour_window(5)) < old_total
    assert 0 < files_of_spec(table, old_spec, EqualTo("service_name", "cart")) < old_total
    # New data is pruned by its hour and service partitions.
    last_hour = (800 + len(committed)) // 20 - 1
    assert 0 < files_of_spec(table, new_spec, hour_window(last_hour)) < new_total
    assert 0 < files_of_spec(table, new_spec, EqualTo("service_name", "cart")) < new_total

    # Compaction moves the old spec's small files into the new spec: the layout reaches old data.
    result = compact_table(table, CompactionOptions.from_settings(settings))
    assert result.commits >= 1
    table.refresh()
    assert files_of_spec(table, old_spec) == 0
    assert sorted(seqs_in(table)) == list(range(800 + len(committed)))
    migrated = files_of_spec(table, new_spec)
    assert files_of_spec(table, new_spec, hour_window(5)) == 1 < migrated
    stats = collect_stats(table)
    assert stats.files_by_spec == ((new_spec, migrated),)
    assert stats.distinct_services == len(SERVICES)


def test_no_proposal_without_evidence_and_stale_proposals_are_refused(tmp_path: Path) -> None:
    settings = layout_settings(tmp_path).replace(
        lake=LakeSettings(
            layout_day_split_bytes=1 << 40,
            layout_min_queries=10,
            layout_min_partition_bytes=1,
            layout_max_trace_buckets=4,
            layout_file_open_bytes=1,
        )
    )
    table = create_spans(open_catalog(settings))
    appender = SpanAppender(open_catalog(settings))
    for i in range(6):
        appender.append(span_batch(range(i * 20, i * 20 + 20), SERVICES[i % 5]))
    table.refresh()
    # A few queries are not evidence.
    log_queries(settings, "acme", ["SELECT * FROM spans WHERE trace_id = 'ab'"] * 3)
    assert propose_layout(settings, "acme", table).empty
    log_queries(settings, "acme", ["SELECT * FROM spans WHERE trace_id = 'ab'"] * 20)
    proposal = propose_layout(settings, "acme", table)
    assert [c.after for c in proposal.changes] == ["bucket[4](trace_id)", "trace_id"]
    # Someone else changes the layout first: the stale proposal is refused, not half-applied.
    with table.update_spec() as update:
        update.add_identity("service_name")
    from emberlake.errors import LakeError

    with pytest.raises(LakeError, match="changed since the proposal"):
        apply_proposal(table, proposal)
    assert LAYOUT_LOG_PROPERTY not in table.properties
    # Reproposed on the new layout, it applies (spec and sort order in one commit).
    applied = apply_proposal(table, propose_layout(settings, "acme", table))
    assert len(applied) == 2
    assert layout_of(table).describe_sort() == "trace_id"
    assert apply_proposal(table, propose_layout(settings, "acme", table)) == []
    # Old queries fall out of the window the policy reads.
    later = time.time() + settings.lake.layout_querylog_seconds + 60
    assert list(read_query_log(settings, "acme", since=later)) == []


def test_the_writer_default_layout_reads_back_as_the_policy_writes_it(tmp_path: Path) -> None:
    table = create_spans(open_catalog(layout_settings(tmp_path)))
    layout = layout_of(table)
    assert layout.sort == (SortKey("service_name"), SortKey("start_time"))
    assert layout.partition == (LayoutField("start_time", "day"),)
