"""OTLP export requests -> Arrow tables in the lake's column contract (pure, no I/O).

Each signal has an accumulator (:class:`SpanColumns`, :class:`LogColumns`,
:class:`MetricColumns`) that takes serialized requests one at a time with ``add(bytes)`` —
rejecting a malformed one with :class:`~emberlake.errors.InvalidRequest` and leaving itself
unchanged — and returns one ``pyarrow.Table`` with ``to_arrow()``. Each column's Arrow field
carries its provenance under the ``doc`` metadata key; the Iceberg schema takes its docs from
there. ``flatten_spans``/``flatten_logs``/``flatten_metrics`` are one-call conveniences.
"""

from __future__ import annotations

import pyarrow as pa

from lake.flatten.common import DOC_KEY, KINDS_SUFFIX, Columns
from lake.flatten.logs import LogColumns, flatten_logs
from lake.flatten.metrics import MetricColumns, flatten_metrics
from lake.flatten.spans import SpanColumns, flatten_spans

COLUMNS: dict[str, type[Columns]] = {
    "logs": LogColumns,
    "spans": SpanColumns,
    "metrics": MetricColumns,
}

#: The time column of each signal's table (partitioned by day, sorted after service_name).
TIME_COLUMN = {"logs": "time", "spans": "start_time", "metrics": "time"}


def columns_for(signal: str, kinds: bool = False) -> Columns:
    """A fresh accumulator for the signal (``logs``, ``spans`` or ``metrics``); with ``kinds``
    its tables also carry the ``<map>__kinds`` columns schema inference reads."""
    return COLUMNS[signal](kinds)


def schema_for(signal: str) -> pa.Schema:
    """The Arrow schema of the signal's contract columns (docs in field metadata)."""
    return COLUMNS[signal].schema


__all__ = [
    "COLUMNS",
    "DOC_KEY",
    "KINDS_SUFFIX",
    "TIME_COLUMN",
    "Columns",
    "LogColumns",
    "MetricColumns",
    "SpanColumns",
    "columns_for",
    "flatten_logs",
    "flatten_metrics",
    "flatten_spans",
    "schema_for",
]
