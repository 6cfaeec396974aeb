"""``emberlake demo`` against a real receiver: shop telemetry lands in Kafka, connected."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from click.testing import CliRunner
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from emberlake.cli import cli
from emberlake.errors import ReceiverUnavailable
from emberlake.local import free_port
from emberlake.settings import Settings
from ingest.demo import SERVICES, run_demo, wait_for_receiver
from ingest.otlp_receiver import ReceiverThread
from tests.ingest.harness import read_records


def _spans(settings: Settings, count: int) -> list[tuple[str, Any]]:
    out = []
    for record in read_records(settings, "spans", count=count, settle=1.0):
        req = ExportTraceServiceRequest.FromString(record.value)
        for rs in req.resource_spans:
            for ss in rs.scope_spans:
                out += [(record.key.decode(), span) for span in ss.spans]
    return out


@pytest.mark.integration
def test_demo_sends_connected_traces_logs_and_metrics(
    receiver: ReceiverThread, settings: Settings
) -> None:
    report = run_demo(
        receiver.grpc_endpoint, tenant="shop", traces=40, seconds=60, rate=200, seed=3
    )
    assert report.ok and report.traces == 40
    assert report.failed_payments > 0
    assert report.spans_acked > 40 * 3 and report.logs_acked > 40

    # Batches may hold several services' spans only if the demo mixed them: it must not.
    spans = _spans(settings, count=len(SERVICES))
    assert len(spans) == report.spans_acked
    assert {key for key, _ in spans} == {f"shop/{name}" for name in SERVICES}
    by_id = {span.span_id: (key, span) for key, span in spans}

    # Cross-service parentage: every payments server span's parent is a checkout client span.
    payments = [s for k, s in spans if k == "shop/payments" and s.kind == 2]
    assert payments
    for span in payments:
        parent_key, parent = by_id[span.parent_span_id]
        assert parent_key == "shop/checkout" and parent.kind == 3
        assert parent.trace_id == span.trace_id
    roots = [s for _, s in spans if not s.parent_span_id]
    assert len(roots) == 40
    assert len({s.trace_id for _, s in spans}) == 40
    for _, span in spans:
        if span.parent_span_id:
            parent = by_id[span.parent_span_id][1]
            assert parent.trace_id == span.trace_id
            assert parent.start_time_unix_nano <= span.start_time_unix_nano
            assert span.end_time_unix_nano <= parent.end_time_unix_nano
    assert {s.name for s in roots} == {"GET /product/{id}", "POST /checkout"}

    # Failed payments are errors with the exception recorded as a span event.
    failed = [s for s in payments if s.status.code == 2]
    assert len(failed) == report.failed_payments
    event = failed[0].events[0]
    assert event.name == "exception"
    attrs = {kv.key: kv.value.string_value for kv in event.attributes}
    assert attrs["exception.type"].endswith("PaymentDeclined")
    http = {kv.key: kv.value for kv in failed[0].attributes}
    assert http["http.response.status_code"].int_value == 502

    # Logs carry the trace context of the span they were written in.
    logs = []
    for record in read_records(settings, "logs", count=len(SERVICES), settle=1.0):
        for rl in ExportLogsServiceRequest.FromString(record.value).resource_logs:
            logs += [r for sl in rl.scope_logs for r in sl.log_records]
    assert len(logs) == report.logs_acked
    assert all(log.trace_id and log.span_id in by_id for log in logs)
    errors = [log for log in logs if log.body.string_value == "payment failed"]
    assert len(errors) == report.failed_payments
    assert errors[0].severity_text == "ERROR"

    # Metrics: a counter, a histogram and a gauge.
    kinds: Counter[tuple[str, str]] = Counter()
    for record in read_records(settings, "metrics", count=len(SERVICES), settle=1.0):
        for rm in ExportMetricsServiceRequest.FromString(record.value).resource_metrics:
            for sm in rm.scope_metrics:
                kinds.update((m.name, m.WhichOneof("data")) for m in sm.metrics)
    assert set(kinds) == {
        ("http.server.request.count", "sum"),
        ("http.server.request.duration", "histogram"),
        ("inventory.stock.level", "gauge"),
    }


@pytest.mark.integration
def test_demo_command_prints_a_json_report(receiver: ReceiverThread) -> None:
    result = CliRunner().invoke(
        cli,
        ["demo", "--endpoint", receiver.grpc_endpoint, "--traces", "5", "--rate", "100", "--json"],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["ok"] is True and report["traces"] == 5
    assert report["spans_acked"] >= 5 * 4


def test_demo_fails_fast_without_a_receiver() -> None:
    with pytest.raises(ReceiverUnavailable, match="no OTLP/gRPC receiver answers"):
        wait_for_receiver(f"127.0.0.1:{free_port()}", timeout=0.5)
