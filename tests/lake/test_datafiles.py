"""Parquet data files for appends: statistics where readers can use them, rows intact."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
from pyiceberg.types import MapType

from emberlake.settings import Settings
from lake.catalog import open_catalog
from lake.datafiles import conform, write_data_files
from lake.flatten import flatten_spans
from lake.tables import ensure_table
from tests.lake.otlp_records import spans_request


def test_map_entries_carry_no_statistics_other_columns_keep_theirs(tmp_path: Path) -> None:
    table = ensure_table(open_catalog(Settings(data_dir=str(tmp_path / "data"))), "acme", "spans")
    schema = table.schema()
    rows = conform(flatten_spans([spans_request("svc", range(20))]), schema)
    [data_file] = write_data_files(table.metadata, table.io, rows)

    local = data_file.file_path.removeprefix("file://")
    metadata = pq.ParquetFile(local).metadata.row_group(0)
    with_stats = {
        metadata.column(i).path_in_schema
        for i in range(metadata.num_columns)
        if metadata.column(i).is_stats_set
    }
    assert {"start_time", "trace_id", "span_id", "name", "service_name"} <= with_stats
    assert not any(path.startswith(("attributes.", "resource_attributes.")) for path in with_stats)

    map_ids = {
        leaf
        for f in schema.fields
        if isinstance(f.field_type, MapType)
        for leaf in (f.field_type.key_id, f.field_type.value_id)
    }
    assert len(map_ids) == 4
    for field_id in map_ids:
        assert field_id not in data_file.value_counts
        assert field_id not in data_file.null_value_counts
        assert field_id in data_file.column_sizes
    start = schema.find_field("start_time").field_id
    trace = schema.find_field("trace_id").field_id
    assert start in data_file.lower_bounds and start in data_file.upper_bounds
    assert trace in data_file.lower_bounds
    assert data_file.record_count == 20
    assert pq.read_table(local).equals(rows)


def test_map_keys_and_values_are_dictionary_encoded_ids_are_not(tmp_path: Path) -> None:
    table = ensure_table(open_catalog(Settings(data_dir=str(tmp_path / "data"))), "acme", "spans")
    rows = conform(flatten_spans([spans_request("svc", range(50))]), table.schema())
    [data_file] = write_data_files(table.metadata, table.io, rows)

    metadata = pq.ParquetFile(data_file.file_path.removeprefix("file://")).metadata.row_group(0)
    dictionary = {
        metadata.column(i).path_in_schema
        for i in range(metadata.num_columns)
        if metadata.column(i).has_dictionary_page
    }
    assert {
        "attributes.key_value.key",
        "attributes.key_value.value",
        "resource_attributes.key_value.key",
        "service_name",
        "name",
    } <= dictionary
    assert not dictionary & {"trace_id", "span_id", "start_time", "duration_ms"}
