"""Compaction against a real SQLite catalog and real Parquet files, next to a live appender."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from emberlake.settings import Settings
from lake.catalog import open_catalog
from lake.compaction import (
    COMPACTION_SUMMARY,
    CompactionOptions,
    compact_table,
    plan_compaction,
)
from lake.layout import BLOOM_FILTER_PROPERTY
from tests.lake.spantables import (
    OFFSET_KEY,
    SERVICES,
    LiveAppender,
    SpanAppender,
    create_spans,
    seqs_in,
    span_batch,
)

pytestmark = pytest.mark.integration

SMALL = CompactionOptions(
    target_file_bytes=8 * 1024 * 1024, small_file_bytes=1024 * 1024, min_files=4
)


def _all_rows(table) -> pa.Table:  # type: ignore[no-untyped-def]
    table.refresh()
    rows = table.scan(selected_fields=tuple(span_batch(range(1)).column_names)).to_arrow()
    return rows.sort_by("span_id")


def _catalog(tmp_path: Path):  # type: ignore[no-untyped-def]
    return open_catalog(Settings(data_dir=str(tmp_path / "data")))


def test_compaction_with_a_live_writer_keeps_every_row_and_the_offsets(tmp_path: Path) -> None:
    table = create_spans(_catalog(tmp_path))
    first = SpanAppender(_catalog(tmp_path))
    for i in range(30):
        first.append(span_batch(range(i * 20, i * 20 + 20), SERVICES[i % 5]))
    table.refresh()
    files_before = len(list(table.scan().plan_files()))

    # A second writer process (own catalog connection) continues the same Kafka partition,
    # committing every ~0.35 s: faster than the writer commits one table (batch_max_seconds).
    live = SpanAppender(_catalog(tmp_path))
    live.offset = first.offset
    appender = LiveAppender(live, first_seq=600, batch=20, pause=0.3)
    appender.start()
    appender.wait_for_batches(3)
    first_run = compact_table(table, SMALL)
    appender.wait_for_batches(appender.batches + 3)
    second = compact_table(table, SMALL)
    appender.wait_for_batches(appender.batches + 2)
    committed = appender.finish()

    assert first_run.commits >= 1 and first_run.files_rewritten >= 8
    assert first_run.files_before >= files_before
    assert second.commits + second.conflicts >= 1
    # Row for row: exactly what was appended, each row once, every column intact.
    # Batches were appended single-service: rebuild them the same way.
    rebuilt = [span_batch(range(i * 20, i * 20 + 20), SERVICES[i % 5]) for i in range(30)]
    rebuilt += [
        span_batch(range(start, start + 20), SERVICES[b % 5])
        for b, start in enumerate(committed[::20])
    ]
    expected = pa.concat_tables(rebuilt).sort_by("span_id")
    actual = _all_rows(table)
    assert actual.num_rows == expected.num_rows == 600 + len(committed)
    assert actual.to_pylist() == expected.to_pylist()
    # The writer's exactly-once bookkeeping survived every compaction commit.
    table.refresh()
    assert table.properties[OFFSET_KEY] == str(live.offset) == str(20 * (30 + appender.batches))
    assert table.properties["write.delete.isolation-level"] == "snapshot"
    # Compaction commits are single overwrite snapshots saying what they did (the appender
    # expires old snapshots, so some may be gone).
    compactions = [
        s for s in table.metadata.snapshots if s.summary and s.summary[COMPACTION_SUMMARY]
    ]
    assert len(compactions) <= first_run.commits + second.commits
    assert all(s.summary.operation.value == "overwrite" for s in compactions)  # type: ignore[union-attr]
    # Compaction leaves far fewer files than the appends made.
    final = compact_table(table, SMALL)
    days = {t.file.partition[0] for t in table.scan().plan_files()}
    # At most a few small files per day partition remain (fewer than min_files).
    assert final.files_after <= len(days) * SMALL.min_files
    assert final.files_after < files_before + appender.batches
    assert sorted(seqs_in(table)) == list(range(600 + len(committed)))


def test_compacted_files_are_sorted_by_the_sort_order(tmp_path: Path) -> None:
    table = create_spans(_catalog(tmp_path))
    appender = SpanAppender(_catalog(tmp_path))
    # Five batches of one day, out of time order; the table is sorted by service, then time.
    for start in (320, 0, 160, 80, 240):
        appender.append(span_batch(range(start, start + 80)))
    table.refresh()
    result = compact_table(table, SMALL)
    assert result.files_after < result.files_before
    for task in table.scan().plan_files():
        data = pq.read_table(task.file.file_path.removeprefix("file://"))
        keys = list(
            zip(
                data.column("service_name").to_pylist(),
                data.column("start_time").to_pylist(),
                strict=True,
            )
        )
        assert keys == sorted(keys)
    assert result.files_after == 1
    assert sorted(seqs_in(table)) == list(range(400))


def test_small_groups_of_the_current_spec_are_left_alone(tmp_path: Path) -> None:
    table = create_spans(_catalog(tmp_path))
    appender = SpanAppender(_catalog(tmp_path))
    for i in range(3):
        appender.append(span_batch(range(i * 10, i * 10 + 10)))
    table.refresh()
    assert plan_compaction(table, SMALL) == []
    result = compact_table(table, SMALL)
    assert (result.commits, result.files_after) == (0, result.files_before)


def test_big_files_are_not_rewritten(tmp_path: Path) -> None:
    table = create_spans(_catalog(tmp_path))
    appender = SpanAppender(_catalog(tmp_path))
    for i in range(6):
        appender.append(span_batch(range(i * 40, i * 40 + 40)))
    table.refresh()
    tiny = CompactionOptions(target_file_bytes=1 << 20, small_file_bytes=100, min_files=2)
    assert plan_compaction(table, tiny) == []
    ids = pc.sort_indices(table.scan().to_arrow(), sort_keys=[("span_id", "ascending")])
    assert len(ids) == 240


def test_rewritten_files_have_row_groups_bloom_filters_and_sorting_metadata(
    tmp_path: Path,
) -> None:
    table = create_spans(_catalog(tmp_path))
    appender = SpanAppender(_catalog(tmp_path))
    for start in range(0, 400, 50):  # one day
        appender.append(span_batch(range(start, start + 50)))
    table.refresh()
    table.transaction().set_properties({BLOOM_FILTER_PROPERTY: "trace_id"}).commit_transaction()
    table.refresh()
    # Several row groups per file: min/max statistics of sorted data skip within a file.
    options = CompactionOptions(
        target_file_bytes=8 * 1024 * 1024,
        small_file_bytes=1024 * 1024,
        min_files=4,
        row_groups_per_file=4,
        min_row_group_rows=64,
        max_row_group_rows=64,
    )
    # Rows per group: a target file's rows / row_groups_per_file, within the bounds.
    sizing = CompactionOptions(
        target_file_bytes=8 << 20, row_groups_per_file=4, min_row_group_rows=64
    )
    assert sizing.row_group_rows(rows=1000, disk_bytes=8 << 20) == 250
    assert sizing.row_group_rows(rows=10, disk_bytes=8 << 20) == 64
    assert sizing.row_group_rows(rows=10**9, disk_bytes=8 << 20) == sizing.max_row_group_rows
    result = compact_table(table, options)
    assert (result.files_before, result.files_after) == (8, 1)
    path = next(iter(table.scan().plan_files())).file.file_path.removeprefix("file://")
    meta = pq.ParquetFile(path).metadata
    assert meta.num_row_groups == 400 // 64 + 1
    sorting = meta.row_group(0).sorting_columns
    names = [meta.schema.column(c.column_index).name for c in sorting]
    assert names == ["service_name", "start_time"]
    con = duckdb.connect()
    blooms = dict(
        con.execute(
            "SELECT path_in_schema, count(*) FILTER (WHERE bloom_filter_length > 0)"
            " FROM parquet_metadata(?) GROUP BY 1",
            [path],
        ).fetchall()
    )
    assert blooms["trace_id"] == meta.num_row_groups
    assert blooms["span_id"] == 0
    # The filter answers lookups: a present id is found, the row groups of absent ones skipped.
    trace = table.scan().to_arrow().column("trace_id")[123].as_py()
    hits = con.execute(
        "SELECT count(*) FROM read_parquet(?) WHERE trace_id = ?", [path, trace]
    ).fetchone()
    assert hits is not None and hits[0] >= 1
    assert sorted(seqs_in(table)) == list(range(400))


def test_a_rewrite_group_is_sorted_as_a_whole_into_consecutive_key_ranges(
    tmp_path: Path,
) -> None:
    table = create_spans(_catalog(tmp_path))
    appender = SpanAppender(_catalog(tmp_path))
    for start in range(0, 400, 20):  # one day, every batch holding all five services
        appender.append(span_batch(range(start, start + 20)))
    table.refresh()
    files_before = list(table.scan().plan_files())
    target = sum(t.file.file_size_in_bytes for t in files_before) // 3
    options = CompactionOptions(
        target_file_bytes=target, small_file_bytes=1 << 20, min_files=4, group_target_files=8
    )
    (group,) = plan_compaction(table, options)  # one group: the whole day
    assert len(group.files) == 20
    compact_table(table, options)
    table.refresh()
    ranges = sorted(
        (
            pq.read_table(t.file.file_path.removeprefix("file://"))
            .column("service_name")
            .to_pylist()
            for t in table.scan().plan_files()
        ),
        key=lambda values: values[0],
    )
    assert len(ranges) >= 2
    # Each file holds a consecutive stretch of services: no service spans all files, and a
    # service filter can skip files by their bounds.
    for before, after in zip(ranges, ranges[1:], strict=False):
        assert before[-1] <= after[0]
    assert sorted(seqs_in(table)) == list(range(400))
