"""Real Iceberg tables for query daemon tests, shaped like the lake's column contract.

A few columns of each signal are enough: timestamps (timestamptz, microseconds), strings, a double,
a map<string, string> of attributes and a list<long>, each field with its provenance doc.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.table.sorting import SortField, SortOrder
from pyiceberg.transforms import DayTransform, IdentityTransform
from pyiceberg.types import (
    DoubleType,
    ListType,
    LongType,
    MapType,
    NestedField,
    StringType,
    TimestamptzType,
)

T0 = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)

SPANS = Schema(
    NestedField(1, "start_time", TimestamptzType(), required=False, doc="OTLP span start time"),
    NestedField(2, "duration_ms", DoubleType(), required=False, doc="end_time - start_time"),
    NestedField(3, "trace_id", StringType(), required=False, doc="OTLP trace id (hex)"),
    NestedField(4, "span_id", StringType(), required=False, doc="OTLP span id (hex)"),
    NestedField(5, "name", StringType(), required=False, doc="OTLP span name"),
    NestedField(6, "status_code", StringType(), required=False, doc="OTLP status code"),
    NestedField(
        7, "service_name", StringType(), required=False, doc="resource attribute service.name"
    ),
    NestedField(
        8,
        "attributes",
        MapType(9, StringType(), 10, StringType(), value_required=False),
        required=False,
        doc="OTLP span attributes",
    ),
)

METRICS = Schema(
    NestedField(1, "time", TimestamptzType(), required=False, doc="OTLP data point time"),
    NestedField(2, "metric_name", StringType(), required=False, doc="OTLP metric name"),
    NestedField(3, "value", DoubleType(), required=False, doc="gauge or sum value"),
    NestedField(
        4,
        "bucket_counts",
        ListType(5, LongType(), element_required=False),
        required=False,
        doc="histogram bucket counts",
    ),
    NestedField(
        6, "service_name", StringType(), required=False, doc="resource attribute service.name"
    ),
)

LOGS = Schema(
    NestedField(1, "time", TimestamptzType(), required=False, doc="OTLP log time"),
    NestedField(2, "severity_text", StringType(), required=False, doc="OTLP severity text"),
    NestedField(3, "body", StringType(), required=False, doc="OTLP log body"),
    NestedField(
        4, "service_name", StringType(), required=False, doc="resource attribute service.name"
    ),
)

_ATTRS = pa.map_(pa.string(), pa.string())
_TS = pa.timestamp("us", tz="UTC")


def create_tables(catalog: Catalog, tenant: str) -> dict[str, Table]:
    """Create the tenant namespace with empty spans (day-partitioned, sorted), metrics and logs."""
    catalog.create_namespace_if_not_exists(tenant)
    spec = PartitionSpec(
        PartitionField(source_id=1, field_id=1000, transform=DayTransform(), name="start_day")
    )
    order = SortOrder(SortField(source_id=7, transform=IdentityTransform()))
    return {
        "spans": catalog.create_table(
            (tenant, "spans"), SPANS, partition_spec=spec, sort_order=order
        ),
        "metrics": catalog.create_table((tenant, "metrics"), METRICS),
        "logs": catalog.create_table((tenant, "logs"), LOGS),
    }


def span_rows(
    count: int, service: str = "checkout", start: int = 0, name: str = "GET /cart"
) -> pa.Table:
    """``count`` spans one second apart; every 10th has status ERROR."""
    ids = range(start, start + count)
    return pa.table(
        {
            "start_time": pa.array([T0 + dt.timedelta(seconds=i) for i in ids], _TS),
            "duration_ms": pa.array([float(i % 100) for i in ids], pa.float64()),
            "trace_id": pa.array([f"{i:032x}" for i in ids], pa.string()),
            "span_id": pa.array([f"{i:016x}" for i in ids], pa.string()),
            "name": pa.array([name] * count, pa.string()),
            "status_code": pa.array(["ERROR" if i % 10 == 0 else "OK" for i in ids], pa.string()),
            "service_name": pa.array([service] * count, pa.string()),
            "attributes": pa.array(
                [[("http.route", f"/r{i % 3}"), ("n", str(i))] for i in ids], _ATTRS
            ),
        }
    )


def metric_rows(values: Sequence[float], buckets: Sequence[list[int] | None]) -> pa.Table:
    n = len(values)
    return pa.table(
        {
            "time": pa.array([T0 + dt.timedelta(seconds=i) for i in range(n)], _TS),
            "metric_name": pa.array(["latency"] * n, pa.string()),
            "value": pa.array(list(values), pa.float64()),
            "bucket_counts": pa.array(list(buckets), pa.list_(pa.int64())),
            "service_name": pa.array(["checkout"] * n, pa.string()),
        }
    )


def log_rows(bodies: Sequence[str], severity: str = "INFO") -> pa.Table:
    n = len(bodies)
    return pa.table(
        {
            "time": pa.array([T0 + dt.timedelta(seconds=i) for i in range(n)], _TS),
            "severity_text": pa.array([severity] * n, pa.string()),
            "body": pa.array(list(bodies), pa.string()),
            "service_name": pa.array(["checkout"] * n, pa.string()),
        }
    )


def append(table: Table, rows: pa.Table) -> Table:
    """Append rows in one snapshot (one data file per partition) and return the table."""
    table.refresh()
    table.append(rows)
    table.refresh()
    return table
