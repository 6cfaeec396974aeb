"""Flatten OTLP metrics export requests into the ``metrics`` contract (one row per data point).

All five point types share one table: columns that do not apply to a point's type are null
(``value`` is for gauges and sums, ``bucket_counts``/``explicit_bounds`` for histograms, the
``positive_*``/``negative_*``/``scale``/``zero_count`` columns for exponential histograms,
``quantiles``/``quantile_values`` for summaries).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from lake.flatten.common import (
    DOUBLE_LIST,
    LONG_LIST,
    TIMESTAMP,
    AttributeColumn,
    Columns,
    field,
    micros,
    parse,
    resource_fields,
)
from lake.flatten.wire import LeanMetricsRequest

TEMPORALITIES = ("UNSPECIFIED", "DELTA", "CUMULATIVE")
#: OTLP ``Metric.data`` oneof member -> metric_type.
TYPES = {
    "gauge": "gauge",
    "sum": "sum",
    "histogram": "histogram",
    "exponential_histogram": "exponential_histogram",
    "summary": "summary",
}

SCHEMA = pa.schema(
    [
        field("time", TIMESTAMP, "OTLP data point time_unix_nano"),
        field("start_time", TIMESTAMP, "OTLP data point start_time_unix_nano"),
        field("metric_name", pa.string(), "OTLP metric name"),
        field("metric_description", pa.string(), "OTLP metric description"),
        field("metric_unit", pa.string(), "OTLP metric unit"),
        field("metric_type", pa.string(), "OTLP metric data type"),
        field("value", pa.float64(), "OTLP number data point as_double/as_int"),
        field("is_monotonic", pa.bool_(), "OTLP sum is_monotonic"),
        field("aggregation_temporality", pa.string(), "OTLP metric aggregation_temporality"),
        field("count", pa.int64(), "OTLP data point count"),
        field("sum", pa.float64(), "OTLP data point sum"),
        field("min", pa.float64(), "OTLP data point min"),
        field("max", pa.float64(), "OTLP data point max"),
        field("bucket_counts", LONG_LIST, "OTLP histogram bucket_counts"),
        field("explicit_bounds", DOUBLE_LIST, "OTLP histogram explicit_bounds"),
        field("scale", pa.int32(), "OTLP exponential histogram scale"),
        field("zero_count", pa.int64(), "OTLP exponential histogram zero_count"),
        field("positive_offset", pa.int32(), "OTLP exponential histogram positive.offset"),
        field("positive_bucket_counts", LONG_LIST, "OTLP exp. histogram positive.bucket_counts"),
        field("negative_offset", pa.int32(), "OTLP exponential histogram negative.offset"),
        field("negative_bucket_counts", LONG_LIST, "OTLP exp. histogram negative.bucket_counts"),
        field("quantiles", DOUBLE_LIST, "OTLP summary quantile_values.quantile"),
        field("quantile_values", DOUBLE_LIST, "OTLP summary quantile_values.value"),
        field("flags", pa.int64(), "OTLP data point flags"),
        *resource_fields("OTLP data point attributes"),
    ]
)

#: Columns filled per point, in SCHEMA order, between ``metric_type`` and ``flags``.
_POINT_COLUMNS = [f.name for f in SCHEMA][6:23]


def _temporality(value: int) -> str:
    return TEMPORALITIES[value] if 0 <= value < len(TEMPORALITIES) else f"UNKNOWN_{value}"


def _optional(point: Any, name: str) -> Any:
    return getattr(point, name) if point.HasField(name) else None


class MetricColumns(Columns):
    """Accumulates data points from serialized ``ExportMetricsServiceRequest``s."""

    schema = SCHEMA

    def __init__(self, kinds: bool = False) -> None:
        super().__init__(kinds)
        self.time: list[int] = []
        self.start: list[int] = []
        self.name: list[str] = []
        self.description: list[str | None] = []
        self.unit: list[str | None] = []
        self.type: list[str] = []
        self.flags: list[int] = []
        self.point: dict[str, list[Any]] = {name: [] for name in _POINT_COLUMNS}
        self.attributes = AttributeColumn()
        self.maps = [self.attributes]
        self.lists = [
            self.time,
            self.start,
            self.name,
            self.description,
            self.unit,
            self.type,
            self.flags,
            *self.point.values(),
        ]

    def _add(self, data: bytes) -> None:
        request = parse(LeanMetricsRequest, data)
        rs = self.rs
        for resource_metrics in request.resource_metrics:
            rs.start_resource(resource_metrics.resource)
            for scope_metrics in resource_metrics.scope_metrics:
                scope_index = rs.start_scope(scope_metrics.scope)
                for metric in scope_metrics.metrics:
                    rs.mark_rows(scope_index, self._add_metric(metric))

    def _add_metric(self, metric: Any) -> int:
        kind = metric.WhichOneof("data")
        if kind is None:
            return 0
        body = getattr(metric, kind)
        points = body.data_points
        monotonic = body.is_monotonic if kind == "sum" else None
        temporality = (
            _temporality(body.aggregation_temporality)
            if kind in ("sum", "histogram", "exponential_histogram")
            else None
        )
        add_point = getattr(self, f"_point_{kind}")
        column = self.point
        for point in points:
            self.time.append(point.time_unix_nano)
            self.start.append(point.start_time_unix_nano)
            self.flags.append(point.flags)
            self.attributes.add(point.attributes[:])
            values = add_point(point)
            values["is_monotonic"] = monotonic
            values["aggregation_temporality"] = temporality
            for name, col in column.items():
                col.append(values.get(name))
        n = len(points)
        self.name.extend([metric.name] * n)
        self.description.extend([metric.description or None] * n)
        self.unit.extend([metric.unit or None] * n)
        self.type.extend([TYPES[kind]] * n)
        return n

    @staticmethod
    def _number(point: Any) -> float | None:
        which = point.WhichOneof("value")
        return None if which is None else float(getattr(point, which))

    def _point_gauge(self, point: Any) -> dict[str, Any]:
        return {"value": self._number(point)}

    _point_sum = _point_gauge

    def _point_histogram(self, point: Any) -> dict[str, Any]:
        return {
            "count": point.count,
            "sum": _optional(point, "sum"),
            "min": _optional(point, "min"),
            "max": _optional(point, "max"),
            "bucket_counts": list(point.bucket_counts),
            "explicit_bounds": list(point.explicit_bounds),
        }

    def _point_exponential_histogram(self, point: Any) -> dict[str, Any]:
        return {
            "count": point.count,
            "sum": _optional(point, "sum"),
            "min": _optional(point, "min"),
            "max": _optional(point, "max"),
            "scale": point.scale,
            "zero_count": point.zero_count,
            "positive_offset": point.positive.offset,
            "positive_bucket_counts": list(point.positive.bucket_counts),
            "negative_offset": point.negative.offset,
            "negative_bucket_counts": list(point.negative.bucket_counts),
        }

    def _point_summary(self, point: Any) -> dict[str, Any]:
        quantiles = point.quantile_values
        return {
            "count": point.count,
            "sum": point.sum,
            "quantiles": [q.quantile for q in quantiles],
            "quantile_values": [q.value for q in quantiles],
        }

    def to_arrow(self) -> pa.Table:
        service, resource, scope_name, scope_version = self.rs.columns()
        point_arrays = [
            _point_array(self.point[name], SCHEMA.field(name).type) for name in _POINT_COLUMNS
        ]
        columns = [
            micros(self.time),
            micros(self.start, zero_is_null=True),
            pa.array(self.name, pa.string()),
            pa.array(self.description, pa.string()),
            pa.array(self.unit, pa.string()),
            pa.array(self.type, pa.string()),
            *point_arrays,
            pa.array(self.flags, pa.int64()),
            service,
            resource,
            scope_name,
            scope_version,
            self.attributes.to_arrow(),
        ]
        return self._with_kinds(pa.Table.from_arrays(columns, schema=SCHEMA), self.attributes)


_INT64_MAX = pa.scalar(2**63 - 1, pa.uint64())


def _saturated(values: pa.Array) -> pa.Array:
    return pc.min_element_wise(values, _INT64_MAX, skip_nulls=False).cast(pa.int64())


def _point_array(values: list[Any], kind: pa.DataType) -> pa.Array:
    """One data point column. Counts are unsigned 64-bit in OTLP: one beyond the int64 range
    (only a broken or hostile client sends it) saturates at the int64 maximum instead of
    failing the whole batch."""
    try:
        return pa.array(values, kind)
    except (OverflowError, pa.ArrowInvalid):
        if kind == pa.int64():
            return _saturated(pa.array(values, pa.uint64()))
        if kind == LONG_LIST:
            wide = pa.array(values, pa.list_(pa.uint64()))
            return pa.ListArray.from_arrays(
                wide.offsets, _saturated(wide.values), mask=wide.is_null()
            )
        raise


def flatten_metrics(requests: Iterable[bytes | Any]) -> pa.Table:
    """Data points of serialized (or message) metrics export requests as one Arrow table."""
    columns = MetricColumns()
    for request in requests:
        columns.add(request if isinstance(request, bytes) else request.SerializeToString())
    return columns.to_arrow()
