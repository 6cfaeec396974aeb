"""The lake's tables: Iceberg schemas, layout and properties, and creating them on first sight.

One namespace per tenant (namespace name == tenant name) holds ``logs``, ``spans``, ``metrics``
and ``dead_letters``; the reserved namespace ``emberlake`` holds the writer's checkpoints and the
dead letters of records whose tenant is unknown. Schemas come from the flatteners' Arrow schemas,
each Iceberg field's ``doc`` naming the OTLP source of the column.
"""

from __future__ import annotations

import logging

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import (
    NamespaceAlreadyExistsError,
    NoSuchNamespaceError,
    NoSuchTableError,
    TableAlreadyExistsError,
)
from pyiceberg.partitioning import UNPARTITIONED_PARTITION_SPEC, PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.table.sorting import SortField, SortOrder
from pyiceberg.transforms import DayTransform, IdentityTransform
from pyiceberg.types import (
    BinaryType,
    BooleanType,
    DoubleType,
    FloatType,
    IcebergType,
    IntegerType,
    ListType,
    LongType,
    MapType,
    NestedField,
    StringType,
    TimestamptzType,
)

from emberlake.errors import LakeError
from lake.flatten import DOC_KEY, TIME_COLUMN, schema_for
from lake.flatten.common import TIMESTAMP, field

log = logging.getLogger(__name__)

#: Namespace for the writer's own state and for dead letters without a known tenant.
SYSTEM_NAMESPACE = "emberlake"
SIGNAL_TABLES = ("logs", "spans", "metrics")
DEAD_LETTERS = "dead_letters"

#: Properties of every table the writer creates.
TABLE_PROPERTIES = {
    "format-version": "2",
    "write.parquet.compression-codec": "zstd",
    # Each commit writes a new metadata file; keep only the last few so the folder stays small.
    "write.metadata.delete-after-commit.enabled": "true",
    "write.metadata.previous-versions-max": "20",
    # Compaction rewrites files while writers append: let non-conflicting changes through.
    "write.delete.isolation-level": "snapshot",
    "write.update.isolation-level": "snapshot",
}

DEAD_LETTERS_SCHEMA = pa.schema(
    [
        field("written_time", TIMESTAMP, "lake writer wall clock when the record was set aside"),
        field("tenant", pa.string(), "Kafka header emberlake-tenant"),
        field("topic", pa.string(), "Kafka record topic"),
        field("partition", pa.int32(), "Kafka record partition"),
        field("offset", pa.int64(), "Kafka record offset"),
        field("key", pa.string(), "Kafka record key"),
        field("reason", pa.string(), "why the lake writer could not store the record"),
        field("value", pa.binary(), "Kafka record value, as received"),
    ]
)


def table_name(namespace: str, table: str) -> str:
    """``namespace.table``: the identifier used with the catalog."""
    return f"{namespace}.{table}"


def arrow_schema_for(table: str) -> pa.Schema:
    """The Arrow schema of a lake table kind (a signal or ``dead_letters``)."""
    return DEAD_LETTERS_SCHEMA if table == DEAD_LETTERS else schema_for(table)


def field_doc(f: pa.Field) -> str | None:
    """The provenance an Arrow field carries in its metadata, if any."""
    if f.metadata and DOC_KEY in f.metadata:
        return f.metadata[DOC_KEY].decode()
    return None


class _Ids:
    def __init__(self) -> None:
        self.last = 0

    def next(self) -> int:
        self.last += 1
        return self.last


def iceberg_type(kind: pa.DataType, ids: _Ids | None = None) -> IcebergType:
    """The Iceberg type for an Arrow type of the column contract (fresh ids for nested fields)."""
    ids = ids or _Ids()
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return StringType()
    if pa.types.is_boolean(kind):
        return BooleanType()
    if pa.types.is_int8(kind) or pa.types.is_int16(kind) or pa.types.is_int32(kind):
        return IntegerType()
    if pa.types.is_integer(kind):
        return LongType()
    if pa.types.is_float32(kind):
        return FloatType()
    if pa.types.is_floating(kind):
        return DoubleType()
    if pa.types.is_timestamp(kind):
        return TimestamptzType()
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return BinaryType()
    if pa.types.is_map(kind):
        key_id, value_id = ids.next(), ids.next()
        return MapType(
            key_id,
            iceberg_type(kind.key_type, ids),
            value_id,
            iceberg_type(kind.item_type, ids),
            value_required=not kind.item_field.nullable,
        )
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        element_id = ids.next()
        return ListType(
            element_id,
            iceberg_type(kind.value_type, ids),
            element_required=not kind.value_field.nullable,
        )
    raise LakeError(f"no Iceberg type for Arrow type {kind}")


def iceberg_schema(schema: pa.Schema) -> Schema:
    """An Iceberg schema from an Arrow schema, with field docs from the ``doc`` metadata."""
    ids = _Ids()
    top_ids = [ids.next() for _ in schema]
    fields = [
        NestedField(
            field_id=field_id,
            name=f.name,
            field_type=iceberg_type(f.type, ids),
            required=not f.nullable,
            doc=field_doc(f),
        )
        for field_id, f in zip(top_ids, schema, strict=True)
    ]
    return Schema(*fields)


def layout(schema: Schema, table: str) -> tuple[PartitionSpec, SortOrder]:
    """Default layout: partitioned by day of the time column, sorted by service then time."""
    time_column = TIME_COLUMN.get(table)
    if time_column is None:
        return UNPARTITIONED_PARTITION_SPEC, SortOrder()
    time_id = schema.find_field(time_column).field_id
    service_id = schema.find_field("service_name").field_id
    spec = PartitionSpec(
        PartitionField(source_id=time_id, field_id=1000, transform=DayTransform(), name="day")
    )
    order = SortOrder(
        SortField(source_id=service_id, transform=IdentityTransform()),
        SortField(source_id=time_id, transform=IdentityTransform()),
    )
    return spec, order


def ensure_namespace(catalog: Catalog, namespace: str) -> None:
    """Create the namespace unless it exists (safe when several writers race to create it)."""
    try:
        catalog.create_namespace(namespace)
    except NamespaceAlreadyExistsError:
        pass
    except Exception as exc:
        # Two processes passed the catalog's existence check at once: the SQL catalog's insert
        # then fails on its unique key (IntegrityError) although the namespace now exists.
        try:
            catalog.load_namespace_properties(namespace)
        except NoSuchNamespaceError:
            raise exc from None


def ensure_table(catalog: Catalog, namespace: str, table: str) -> Table:
    """Load the table, creating namespace and table on first sight (race-safe)."""
    identifier = table_name(namespace, table)
    try:
        return catalog.load_table(identifier)
    except NoSuchTableError:
        pass
    ensure_namespace(catalog, namespace)
    schema = iceberg_schema(arrow_schema_for(table))
    spec, order = layout(schema, table)
    try:
        created = catalog.create_table(
            identifier,
            schema=schema,
            partition_spec=spec,
            sort_order=order,
            properties=TABLE_PROPERTIES,
        )
        log.info("created table %s", identifier)
        return created
    except TableAlreadyExistsError:
        return catalog.load_table(identifier)
