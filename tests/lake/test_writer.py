"""IcebergWriter, table definitions and snapshot expiry against a real SQLite catalog."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyiceberg.types import LongType, StringType

from emberlake.errors import CommitConflict
from emberlake.settings import LakeSettings, Settings
from lake.catalog import open_catalog
from lake.datafiles import BLOOM_FILTER_PROPERTY
from lake.flatten import flatten_spans
from lake.flatten.common import DOC_KEY
from lake.maintenance import SnapshotExpiry
from lake.offsets import CheckpointStore, checkpoint_property, offset_property
from lake.tables import TABLE_PROPERTIES, ensure_table
from lake.writer import IcebergWriter, TableAppend
from tests.lake.lakecheck import seq_counts
from tests.lake.otlp_records import spans_request

KEY0 = offset_property("c1", "p.otlp.spans", 0)
KEY1 = offset_property("c1", "p.otlp.spans", 1)


def _settings(tmp_path: Path, **lake: object) -> Settings:
    return Settings(data_dir=str(tmp_path / "data"), lake=LakeSettings(**lake))  # type: ignore[arg-type]


def _rows(start: int, count: int) -> pa.Table:
    return flatten_spans([spans_request("svc", range(start, start + count))])


def _job(rows: pa.Table, offsets: dict[str, int], expected: dict[str, int | None]) -> TableAppend:
    return TableAppend("acme", "spans", rows, offsets, expected)


def test_tables_are_created_with_docs_layout_and_properties(tmp_path: Path) -> None:
    catalog = open_catalog(_settings(tmp_path))
    table = ensure_table(catalog, "acme", "spans")
    again = ensure_table(catalog, "acme", "spans")  # second sight: loaded, not re-created
    assert again.metadata.table_uuid == table.metadata.table_uuid
    schema = table.schema()
    assert schema.find_field("service_name").doc == "resource attribute service.name"
    assert schema.find_field("start_time").doc == "OTLP span start_time_unix_nano"
    assert str(table.spec().fields[0].transform) == "day"
    assert [schema.find_column_name(f.source_id) for f in table.sort_order().fields] == [
        "service_name",
        "start_time",
    ]
    for key, value in TABLE_PROPERTIES.items():
        if key != "format-version":
            assert table.properties[key] == value


def test_append_commits_rows_and_offsets_together(tmp_path: Path) -> None:
    catalog = open_catalog(_settings(tmp_path))
    writer = IcebergWriter(catalog)
    writer.append(_job(_rows(0, 10), {KEY0: 5}, {KEY0: None}))
    writer.append(_job(_rows(10, 10), {KEY0: 9}, {KEY0: 5}))
    table = catalog.load_table("acme.spans")
    assert table.properties[KEY0] == "9"
    assert seq_counts(table.scan().to_arrow()) == dict.fromkeys(range(20), 1)
    assert len(table.snapshots()) == 2


def test_a_writer_whose_offsets_moved_cannot_commit(tmp_path: Path) -> None:
    catalog = open_catalog(_settings(tmp_path))
    owner = IcebergWriter(catalog)
    zombie = IcebergWriter(open_catalog(_settings(tmp_path)))
    zombie.table("acme", "spans")  # loaded before the owner moves on
    owner.append(_job(_rows(0, 10), {KEY0: 5}, {KEY0: None}))
    with pytest.raises(CommitConflict):
        zombie.append(_job(_rows(100, 10), {KEY0: 7}, {KEY0: None}))
    table = catalog.load_table("acme.spans")
    assert table.properties[KEY0] == "5"
    assert set(seq_counts(table.scan().to_arrow())) == set(range(10))


def test_writers_on_different_partitions_keep_each_others_offsets(tmp_path: Path) -> None:
    catalog = open_catalog(_settings(tmp_path))
    one = IcebergWriter(catalog)
    two = IcebergWriter(open_catalog(_settings(tmp_path)))
    one.table("acme", "spans")
    two.table("acme", "spans")  # both hold the same (soon stale) metadata
    one.append(_job(_rows(0, 10), {KEY0: 3}, {KEY0: None}))
    two.append(_job(_rows(10, 10), {KEY1: 4}, {KEY1: None}))
    one.append(_job(_rows(20, 10), {KEY0: 6}, {KEY0: 3}))
    table = catalog.load_table("acme.spans")
    assert (table.properties[KEY0], table.properties[KEY1]) == ("6", "4")
    assert seq_counts(table.scan().to_arrow()) == dict.fromkeys(range(30), 1)


def test_a_commit_that_already_landed_is_not_repeated(tmp_path: Path) -> None:
    catalog = open_catalog(_settings(tmp_path))
    writer = IcebergWriter(catalog)
    job = _job(_rows(0, 10), {KEY0: 5}, {KEY0: None})
    writer.append(job)
    writer.append(job)  # e.g. after an error whose outcome was unknown
    table = catalog.load_table("acme.spans")
    assert len(table.scan().to_arrow()) == 10


def test_new_columns_are_added_with_their_docs(tmp_path: Path) -> None:
    catalog = open_catalog(_settings(tmp_path))
    writer = IcebergWriter(catalog)
    writer.append(_job(_rows(0, 5), {KEY0: 1}, {KEY0: None}))
    rows = _rows(5, 5)
    routes = pa.array([f"/r/{i}" for i in range(5)], pa.string())
    rows = rows.append_column(
        pa.field("attr_http_route", pa.string(), metadata={DOC_KEY: b"attribute http.route"}),
        routes,
    )
    rows = rows.append_column(pa.field("attr_status", pa.int64()), pa.array(range(5), pa.int64()))
    writer.append(_job(rows, {KEY0: 2}, {KEY0: 1}))
    table = catalog.load_table("acme.spans")
    route = table.schema().find_field("attr_http_route")
    assert route.doc == "attribute http.route" and route.field_type == StringType()
    assert table.schema().find_field("attr_status").field_type == LongType()
    values = table.scan().to_arrow().column("attr_http_route").to_pylist()
    assert sorted(v for v in values if v) == [f"/r/{i}" for i in range(5)]
    assert values.count(None) == 5  # the rows written before the column existed


def test_expiry_keeps_snapshot_count_bounded(tmp_path: Path) -> None:
    catalog = open_catalog(_settings(tmp_path))
    expiry = SnapshotExpiry(every=5, retain_seconds=0, keep_min=3)
    writer = IcebergWriter(catalog, expiry)
    for i in range(23):
        writer.append(_job(_rows(i, 1), {KEY0: i + 1}, {KEY0: i or None}))
    table = catalog.load_table("acme.spans")
    assert len(table.snapshots()) <= 3 + 5
    # Expiry never loses data: every row is still there.
    assert seq_counts(table.scan().to_arrow()) == dict.fromkeys(range(23), 1)
    # Old metadata files are deleted after commits.
    metadata_dir = Path(table.metadata_location.removeprefix("file://")).parent
    assert len(list(metadata_dir.glob("*.metadata.json"))) <= 21 + 1


def test_checkpoints_per_partition(tmp_path: Path) -> None:
    catalog = open_catalog(_settings(tmp_path))
    store = CheckpointStore(catalog, "c1")
    assert store.load([("t", 0), ("t", 1)]) == {("t", 0): None, ("t", 1): None}
    store.save({("t", 0): 10})
    CheckpointStore(catalog, "c1").save({("t", 1): 4})
    assert store.load([("t", 0), ("t", 1)]) == {("t", 0): 10, ("t", 1): 4}
    # Another broker (a fresh embedded one) has its own marks.
    assert CheckpointStore(catalog, "c2").load([("t", 0)]) == {("t", 0): None}
    assert checkpoint_property("c1", "t", 0) in catalog.load_namespace_properties("emberlake")


def test_schema_inference_hook_promotes_typed_columns(tmp_path: Path) -> None:
    from lake.flatten import SpanColumns
    from lake.schema_inference import PromotionHook, PromotionPolicy

    catalog = open_catalog(_settings(tmp_path))
    writer = IcebergWriter(catalog)
    hook = PromotionHook(PromotionPolicy())
    for batch in range(3):
        columns = SpanColumns(kinds=True)
        columns.add(spans_request("svc", range(batch * 50, batch * 50 + 50)).SerializeToString())
        table = writer.table("acme", "spans")
        rows, properties = hook(table, columns.to_arrow())
        assert not [c for c in rows.column_names if c.endswith("__kinds")]
        job = _job(rows, {KEY0: batch + 1}, {KEY0: batch or None})
        job.properties = properties
        writer.append(job)
    schema = catalog.load_table("acme.spans").schema()
    seq = schema.find_field("attr_seq")
    assert seq.field_type == LongType() and "seq" in (seq.doc or "")
    rows = catalog.load_table("acme.spans").scan().to_arrow()
    typed = [v for v in rows.column("attr_seq").to_pylist() if v is not None]
    assert typed and all(isinstance(v, int) for v in typed)
    # The map keeps every attribute, promoted or not.
    assert seq_counts(rows) == dict.fromkeys(range(150), 1)


def test_interned_attributes_promote_like_the_kind_columns(tmp_path: Path) -> None:
    from lake.flatten import SpanColumns
    from lake.schema_inference import PromotionHook, PromotionPolicy

    results = []
    for interned in (False, True):
        catalog = open_catalog(_settings(tmp_path / str(interned)))
        writer = IcebergWriter(catalog)
        hook = PromotionHook(PromotionPolicy(), clock=lambda: 1)
        for batch in range(3):
            columns = SpanColumns(kinds=not interned)
            request = spans_request(f"svc{batch}", range(batch * 50, batch * 50 + 50))
            columns.add(request.SerializeToString())
            table = writer.table("acme", "spans")
            if interned:
                rows, properties = hook.promote(
                    table, columns.to_arrow(), columns.inference_attributes()
                )
            else:
                rows, properties = hook(table, columns.to_arrow())
            job = _job(rows, {KEY0: batch + 1}, {KEY0: batch or None})
            job.properties = properties
            writer.append(job)
        rows = catalog.load_table("acme.spans").scan().to_arrow()
        promoted = sorted(n for n in rows.column_names if n.startswith(("attr_", "res_")))
        results.append({n: sorted(map(str, rows.column(n).to_pylist())) for n in promoted})
    assert results[0] == results[1]
    assert {"attr_seq", "attr_http_route", "res_host_name"} <= set(results[1])


def test_appended_files_get_the_bloom_filters_the_layout_asks_for(tmp_path: Path) -> None:
    catalog = open_catalog(_settings(tmp_path))
    writer = IcebergWriter(catalog)
    writer.append(_job(_rows(0, 50), {KEY0: 1}, {KEY0: None}))
    # The layout is changed by another process (the maintainer): the writer sees it from its
    # next commit on, the files of the commit in between may still lack the filters.
    table = catalog.load_table("acme.spans")
    table.transaction().set_properties({BLOOM_FILTER_PROPERTY: "trace_id"}).commit_transaction()
    writer.append(_job(_rows(50, 50), {KEY0: 2}, {KEY0: 1}))
    writer.append(_job(_rows(100, 50), {KEY0: 3}, {KEY0: 2}))
    table.refresh()
    con = duckdb.connect()
    blooms: dict[int, dict[str, int]] = {}
    paths: dict[int, str] = {}
    for task in table.scan().plan_files():
        path = task.file.file_path.removeprefix("file://")
        rows = con.execute(
            "SELECT path_in_schema, count(*) FILTER (WHERE bloom_filter_length > 0)"
            " FROM parquet_metadata(?) GROUP BY 1",
            [path],
        ).fetchall()
        first = min(seq_counts(pq.read_table(path))) // 50
        blooms[first], paths[first] = dict(rows), path
    assert blooms[0]["trace_id"] == 0
    assert blooms[2]["trace_id"] >= 1
    assert blooms[2]["span_id"] == 0
    # A lookup through the filter still finds the trace: the filter holds the written ids.
    traces = pq.read_table(paths[2]).column("trace_id").to_pylist()
    found = con.execute(
        "SELECT count(*) FROM read_parquet(?) WHERE trace_id = ?", [paths[2], traces[7]]
    ).fetchone()
    assert found is not None and found[0] == traces.count(traces[7])
