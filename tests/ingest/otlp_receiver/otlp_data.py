"""Builders of OTLP export requests for tests: valid by default, with knobs to break them."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

_ids = itertools.count(1)


def trace_id() -> bytes:
    return next(_ids).to_bytes(16, "big")


def span_id() -> bytes:
    return next(_ids).to_bytes(8, "big")


def _resource(entry: object, service: str | None) -> None:
    if service is not None:
        kv = entry.resource.attributes.add()  # type: ignore[attr-defined]
        kv.key = "service.name"
        kv.value.string_value = service
    kv = entry.resource.attributes.add()  # type: ignore[attr-defined]
    kv.key = "host.name"
    kv.value.string_value = "test-host"


def spans_request(
    services: Sequence[str | None] = ("checkout",),
    spans_per_resource: int = 3,
    bad: Sequence[tuple[int, int]] = (),
    name_prefix: str = "span",
) -> ExportTraceServiceRequest:
    """One resource per entry of ``services`` (None: no service.name), each with spans named
    ``<prefix>-<resource>-<span>``; ``bad`` lists (resource, span) whose span_id is 3 bytes."""
    req = ExportTraceServiceRequest()
    for r, service in enumerate(services):
        rs = req.resource_spans.add()
        _resource(rs, service)
        scope = rs.scope_spans.add()
        scope.scope.name = "tests"
        tid = trace_id()
        for s in range(spans_per_resource):
            span = scope.spans.add()
            span.trace_id = tid
            span.span_id = b"bad" if (r, s) in bad else span_id()
            span.name = f"{name_prefix}-{r}-{s}"
            span.kind = 2
            span.start_time_unix_nano = 1_700_000_000_000_000_000 + s
            span.end_time_unix_nano = 1_700_000_000_001_000_000 + s
            kv = span.attributes.add()
            kv.key = "http.route"
            kv.value.string_value = "/cart"
    return req


def logs_request(
    services: Sequence[str | None] = ("checkout",),
    records_per_resource: int = 2,
    bad: Sequence[tuple[int, int]] = (),
) -> ExportLogsServiceRequest:
    """Log records, half with trace context; ``bad`` records get a 5-byte trace_id."""
    req = ExportLogsServiceRequest()
    for r, service in enumerate(services):
        rl = req.resource_logs.add()
        _resource(rl, service)
        scope = rl.scope_logs.add()
        for i in range(records_per_resource):
            rec = scope.log_records.add()
            rec.time_unix_nano = 1_700_000_000_000_000_000 + i
            rec.severity_number = 9
            rec.severity_text = "INFO"
            rec.body.string_value = f"log-{r}-{i}"
            if (r, i) in bad:
                rec.trace_id = b"short"
            elif i % 2:
                rec.trace_id = trace_id()
                rec.span_id = span_id()
    return req


def metrics_request(
    services: Sequence[str | None] = ("checkout",), bad_exemplar: bool = False
) -> ExportMetricsServiceRequest:
    """A gauge with two points and a histogram with one, per resource; optionally one gauge
    point carries an exemplar with a 4-byte span id."""
    req = ExportMetricsServiceRequest()
    for r, service in enumerate(services):
        rm = req.resource_metrics.add()
        _resource(rm, service)
        scope = rm.scope_metrics.add()
        gauge = scope.metrics.add()
        gauge.name = f"queue.depth.{r}"
        for v in (1.0, 2.0):
            point = gauge.gauge.data_points.add()
            point.as_double = v
            point.time_unix_nano = 1_700_000_000_000_000_000
        exemplar = gauge.gauge.data_points[0].exemplars.add()
        exemplar.as_double = 1.0
        exemplar.trace_id = trace_id()
        exemplar.span_id = b"bad!" if bad_exemplar else span_id()
        hist = scope.metrics.add()
        hist.name = f"latency.{r}"
        point = hist.histogram.data_points.add()
        point.count = 3
        point.sum = 0.6
        point.bucket_counts.extend([1, 2])
        point.explicit_bounds.append(0.25)
        hist.histogram.aggregation_temporality = 2
        summary = scope.metrics.add()
        summary.name = f"summary.{r}"
        summary.summary.data_points.add().count = 1
    return req
