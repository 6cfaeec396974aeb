"""``emberlake up`` keeps the embedded broker's memory bounded without losing acknowledged data."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from emberlake.local import LocalSystem

pytestmark = pytest.mark.integration


def spans_request(names: list[str]) -> bytes:
    now = time.time_ns()
    spans = [
        trace_pb2.Span(
            trace_id=os.urandom(16),
            span_id=os.urandom(8),
            name=name,
            start_time_unix_nano=now,
            end_time_unix_nano=now + 1000,
            # Random text: the broker keeps compressed batches, so it must not compress away.
            attributes=[
                common_pb2.KeyValue(
                    key="pad", value=common_pb2.AnyValue(string_value=os.urandom(300).hex())
                )
            ],
        )
        for name in names
    ]
    service = common_pb2.KeyValue(key="service.name", value=common_pb2.AnyValue(string_value="s"))
    return trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=[
            trace_pb2.ResourceSpans(
                resource=resource_pb2.Resource(attributes=[service]),
                scope_spans=[trace_pb2.ScopeSpans(spans=spans)],
            )
        ]
    ).SerializeToString()


def send_until_acked(system: LocalSystem, payload: bytes, deadline: float) -> int:
    """Send like an OTLP exporter does: retry retryable failures until acknowledged."""
    attempts = 0
    while time.monotonic() < deadline:
        attempts += 1
        channel = grpc.insecure_channel(f"127.0.0.1:{system.grpc_port}")
        export = channel.unary_unary(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            request_serializer=lambda b: b,
            response_deserializer=trace_service_pb2.ExportTraceServiceResponse.FromString,
        )
        try:
            export(payload, timeout=10)
            return attempts
        except grpc.RpcError as exc:
            assert exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
            time.sleep(0.5)
        finally:
            channel.close()
    raise AssertionError("a request was never acknowledged")


def test_broker_over_its_memory_limit_is_drained_and_replaced(tmp_path: Path) -> None:
    system = LocalSystem(
        tmp_path / "data",
        only=("writer", "queryd", "receiver"),
        extra_env={"EMBERLAKE_KAFKA_EMBEDDED_MAX_MEMORY_MB": "80"},
    )
    system.start()
    run = uuid.uuid4().hex[:8]
    acked: list[str] = []
    retried = 0
    try:
        deadline = time.monotonic() + 240
        # Send until the broker passes its limit and is replaced (each batch adds ~0.3 MB to
        # what it holds, compressed), then a little more through the new broker.
        rotated_at = None
        for batch in range(600):
            names = [f"{run}-{batch}-{i}" for i in range(1000)]
            retried += send_until_acked(system, spans_request(names), deadline) - 1
            acked += names
            if rotated_at is None and "starting it afresh" in system.log_path.read_text():
                rotated_at = batch
            if rotated_at is not None and batch >= rotated_at + 10:
                break
        log = system.log_path.read_text()
        assert "starting it afresh" in log, system.logs()
        system.wait_rows(
            f"SELECT count(DISTINCT name) FROM spans WHERE name LIKE '{run}-%'",
            len(acked),
            timeout=120,
        )
        total = system.query(f"SELECT count(*) FROM spans WHERE name LIKE '{run}-%'")["rows"]
        assert total == [[len(acked)]], "duplicates after the broker was replaced"
    finally:
        assert system.stop() == 0, system.logs()
