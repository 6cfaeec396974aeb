"""Parquet data files for Iceberg appends, written the way the lake's data wants them.

pyiceberg's ``Table.append`` writes correct files but spends as long deciding as writing: it
copies the whole batch while splitting it by partition even when a batch falls into one day, and
it dictionary-encodes every column, including unique ids and timestamps where a dictionary only
costs time. Here a batch that falls into one partition is written as is, dictionaries are kept
for the columns that repeat (names, services, the keys and values of attribute maps), and the
file statistics and ``DataFile`` entries are produced with pyiceberg's own helpers. Column
statistics are written for every column but the entries of map columns (attribute maps): no
reader can prune on a map's keys or values, and computing them cost about a sixth of the file
write; their metrics mode is ``none`` in the data file entries (sizes only), every other
column's are what ``append`` would have produced. The caller adds the returned files in its own
transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyiceberg.io.pyarrow import (
    MetricModeTypes,
    MetricsMode,
    StatisticsCollector,
    _get_parquet_writer_kwargs,
    compute_statistics_plan,
    data_file_statistics_from_parquet_metadata,
    parquet_path_to_id_mapping,
    schema_to_pyarrow,
)
from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
from pyiceberg.partitioning import PartitionFieldValue, PartitionKey, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import TableProperties
from pyiceberg.table.locations import load_location_provider
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.typedef import Record
from pyiceberg.types import (
    BinaryType,
    DoubleType,
    FloatType,
    MapType,
    TimestampType,
    TimestamptzType,
)

from emberlake.errors import LakeError

#: Types whose values rarely repeat: dictionary-encoding them is wasted work.
_NO_DICTIONARY_TYPES = (DoubleType, FloatType, TimestampType, TimestamptzType, BinaryType)
#: Columns that hold ids or free text, unique per row.
_NO_DICTIONARY_NAMES = {"trace_id", "span_id", "parent_span_id", "body", "value"}


def conform(rows: pa.Table, schema: Schema) -> pa.Table:
    """Rows in the table schema's column order and Arrow types, with field ids; absent
    optional columns become nulls, extra columns are an error (evolve the schema first)."""
    target = schema_to_pyarrow(schema, include_field_ids=True)
    extra = set(rows.column_names) - set(target.names)
    if extra:
        raise LakeError(f"columns {sorted(extra)} are not in the table schema; evolve it first")
    columns = []
    for f in target:
        if f.name in rows.column_names:
            column = rows.column(f.name)
            columns.append(column if column.type == f.type else column.cast(f.type))
        elif f.nullable:
            columns.append(pa.nulls(rows.num_rows, f.type))
        else:
            raise LakeError(f"required column {f.name!r} is missing from the rows")
    return pa.Table.from_arrays(columns, schema=target)


def _dictionary_columns(schema: Schema) -> list[str]:
    """The Parquet column paths to dictionary-encode. Paths, not field names: Parquet matches
    leaves, so a map's keys and values are named ``attributes.key_value.key`` and so on (an
    attribute map repeats a few keys and values on every row: a dictionary makes its pages
    about half as large and is a little faster to write than plain strings)."""
    paths = []
    for path, field_id in parquet_path_to_id_mapping(schema).items():
        leaf = schema.find_field(field_id).field_type
        if path.split(".")[0] in _NO_DICTIONARY_NAMES or isinstance(leaf, _NO_DICTIONARY_TYPES):
            continue
        paths.append(path)
    return paths


def _statistics(
    schema: Schema, properties: dict[str, str]
) -> tuple[dict[int, StatisticsCollector], list[str]]:
    """The statistics plan with map entries at metrics mode ``none``, and the Parquet column
    paths to write statistics for (all but the map entries)."""
    plan = compute_statistics_plan(schema, properties)
    paths = parquet_path_to_id_mapping(schema)
    maps = {f.name for f in schema.fields if isinstance(f.field_type, MapType)}
    skipped = {field_id for path, field_id in paths.items() if path.split(".")[0] in maps}
    none = MetricsMode(MetricModeTypes.NONE)
    for field_id in skipped:
        collector = plan[field_id]
        plan[field_id] = StatisticsCollector(
            field_id=collector.field_id,
            iceberg_type=collector.iceberg_type,
            mode=none,
            column_name=collector.column_name,
        )
    return plan, [path for path, field_id in paths.items() if field_id not in skipped]


def _partitions(
    rows: pa.Table, spec: PartitionSpec, schema: Schema
) -> list[tuple[list[Any], pa.Table]]:
    """Split rows by partition values: [(values per spec field, rows)], one split per partition."""
    if spec.is_unpartitioned():
        return [([], rows)]
    transformed: list[pa.Array] = []
    for pf in spec.fields:
        source = schema.find_field(pf.source_id)
        column = rows.column(schema.find_column_name(pf.source_id) or source.name)
        transformed.append(pf.transform.pyarrow_transform(source.field_type)(column))
    uniques = [pc.unique(t) for t in transformed]
    if all(len(u) == 1 for u in uniques):
        # The common case (a batch within one day): no copy at all.
        return [([u[0].as_py() for u in uniques], rows)]
    names = [f"_p{i}" for i in range(len(transformed))]
    keyed = rows
    for name, values in zip(names, transformed, strict=True):
        keyed = keyed.append_column(name, values)
    out = []
    for group in keyed.select(names).group_by(names).aggregate([]).to_pylist():
        mask = None
        for name in names:
            value = group[name]
            test = pc.is_null(keyed[name]) if value is None else pc.equal(keyed[name], value)
            mask = test if mask is None else pc.and_(mask, test)
        out.append(([group[n] for n in names], rows.filter(mask)))
    return out


#: Table property naming the columns whose Parquet files get Bloom filters (comma separated),
#: set by the layout policy for columns looked up by equality. Appends and compaction both
#: honour it; pyiceberg's own writer knows no Bloom filters, so Iceberg's
#: ``write.parquet.bloom-filter-enabled.column.*`` would promise what its writer does not do.
BLOOM_FILTER_PROPERTY = "emberlake.bloom-filter-columns"
#: False positive rate of the Bloom filters (about 1.2 bytes per distinct value at 1 %).
BLOOM_FPP = 0.01


def bloom_filter_columns(properties: Mapping[str, str]) -> tuple[str, ...]:
    """The columns the table's properties ask Bloom filters for, in order."""
    raw = properties.get(BLOOM_FILTER_PROPERTY, "")
    return tuple(c.strip() for c in raw.split(",") if c.strip())


def bloom_filter_options(
    properties: Mapping[str, str], columns: Collection[str], rows_per_group: int, fpp: float
) -> dict[str, dict[str, float]] | None:
    """ParquetWriter ``bloom_filter_options`` for the requested columns present in ``columns``,
    each sized for a row group of distinct values (None: no Bloom filters)."""
    ndv = max(1024, rows_per_group)
    options = {
        name: {"ndv": ndv, "fpp": fpp}
        for name in bloom_filter_columns(properties)
        if name in columns
    }
    return options or None


def write_data_files(
    metadata: TableMetadata, io: Any, rows: pa.Table, write_id: uuid.UUID | None = None
) -> list[DataFile]:
    """Write ``rows`` (already conformed to the current schema) as one Parquet file per
    partition under the table's data location; returns their ``DataFile`` entries."""
    schema = metadata.schema()
    spec = metadata.spec()
    properties = metadata.properties
    locations = load_location_provider(metadata.location, properties)
    row_group = int(
        properties.get(
            TableProperties.PARQUET_ROW_GROUP_LIMIT, TableProperties.PARQUET_ROW_GROUP_LIMIT_DEFAULT
        )
    )
    stats_plan, stats_paths = _statistics(schema, properties)
    how = ParquetFiles.of(
        metadata,
        stats_plan,
        row_group,
        sort_order_id=None,
        use_dictionary=_dictionary_columns(schema),
        write_statistics=stats_paths,
        bloom_filter_options=bloom_filter_options(
            properties, rows.column_names, min(row_group, rows.num_rows), BLOOM_FPP
        ),
    )
    write_id = write_id or uuid.uuid4()
    files = []
    for index, (values, part) in enumerate(_partitions(rows, spec, schema)):
        key = (
            PartitionKey(
                field_values=[
                    PartitionFieldValue(field=f, value=v)
                    for f, v in zip(spec.fields, values, strict=True)
                ],
                partition_spec=spec,
                schema=schema,
            )
            if values
            else None
        )
        path = locations.new_data_location(f"00000-{index}-{write_id}.parquet", key)
        files.append(write_parquet_file(metadata, io, path, part, key, how))
    return files


@dataclass(frozen=True)
class ParquetFiles:
    """How one write lays out its Parquet files, worked out once for all of them."""

    stats_plan: dict[int, StatisticsCollector]
    #: Parquet column path -> Iceberg field id, for the file statistics.
    id_mapping: dict[str, int]
    row_group: int
    sort_order_id: int | None
    #: ParquetWriter keywords: the table's writer properties, then the caller's.
    writer_options: dict[str, Any]

    @classmethod
    def of(
        cls,
        metadata: TableMetadata,
        stats_plan: dict[int, StatisticsCollector],
        row_group: int,
        sort_order_id: int | None,
        **options: Any,
    ) -> ParquetFiles:
        return cls(
            stats_plan,
            parquet_path_to_id_mapping(metadata.schema()),
            row_group,
            sort_order_id,
            {**_get_parquet_writer_kwargs(metadata.properties), **options},
        )


def write_parquet_file(
    metadata: TableMetadata,
    io: Any,
    path: str,
    rows: pa.Table,
    key: PartitionKey | None,
    how: ParquetFiles,
) -> DataFile:
    """Write ``rows`` (of one partition, conformed to the current schema) to one Parquet file
    at ``path``; returns its ``DataFile`` entry with the statistics ``how`` asks for."""
    output = io.new_output(path)
    with output.create(overwrite=True) as stream:
        writer = pq.ParquetWriter(stream, schema=rows.schema, **how.writer_options)
        writer.write_table(rows, row_group_size=how.row_group)
        writer.close()
    statistics = data_file_statistics_from_parquet_metadata(
        parquet_metadata=writer.writer.metadata,
        stats_columns=how.stats_plan,
        parquet_column_mapping=how.id_mapping,
    )
    return DataFile.from_args(
        content=DataFileContent.DATA,
        file_path=path,
        file_format=FileFormat.PARQUET,
        partition=key.partition if key else Record(),
        file_size_in_bytes=len(output),
        sort_order_id=how.sort_order_id,
        spec_id=metadata.default_spec_id,
        equality_ids=None,
        key_metadata=None,
        **statistics.to_serialized_dict(),
    )
