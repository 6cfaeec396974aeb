"""Durable detector state: a restarted runtime resumes exactly where the last commit left it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from agents.faust_app import DetectorRuntime, Record
from emberlake.settings import AgentSettings, Settings

SEC = 1_000_000_000


def spans_request(service: str, t_s: float, n: int) -> bytes:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(
        KeyValue(key="service.name", value=AnyValue(string_value=service))
    )
    ss = rs.scope_spans.add()
    for i in range(n):
        end = int(t_s * SEC) + i
        ss.spans.add(
            trace_id=bytes(16),
            span_id=bytes(8),
            kind=Span.SPAN_KIND_SERVER,
            start_time_unix_nano=end - 10_000_000,
            end_time_unix_nano=end,
        )
    return req.SerializeToString()


def settings_for(tmp_path: Path) -> Settings:
    agents = dataclasses.replace(
        AgentSettings(),
        detector_window_seconds=1.0,
        detector_lateness_seconds=0.0,
        detector_warmup_windows=3,
        detector_min_requests=5,
    )
    return Settings(data_dir=str(tmp_path / "data"), agents=agents)


def record(offset: int, t_s: float, n: int = 10) -> Record:
    return Record(
        "p.otlp.spans",
        0,
        offset,
        b"default/cart",
        spans_request("cart", t_s, n),
        [("emberlake-tenant", b"acme")],
    )


def test_replayed_records_are_skipped_and_state_resumes(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    first = DetectorRuntime(settings, cluster="c1")
    first.fold("spans", [record(0, 100.1), record(1, 100.5)], wall_now=101.0)
    first.fold("spans", [record(2, 101.2)], wall_now=102.0)  # closes window 100
    first.state.close()

    again = DetectorRuntime(settings, cluster="c1")
    assert again.offsets == {("p.otlp.spans", 0): 3}
    # faust re-delivers from its own (older) committed offset: offsets 1 and 2 are not recounted.
    again.fold("spans", [record(1, 100.5), record(2, 101.2), record(3, 101.6)], wall_now=102.5)
    assert again.replayed == 2
    again.fold("spans", [record(4, 102.3)], wall_now=103.0)  # closes window 101
    state = again.engine.services[("spans", "acme", "cart")]
    history = state.metrics["requests_per_second"].history
    assert [(s // 1_000_000, o) for s, o, _ in history] == [(100, 20.0), (101, 20.0)]

    # Another broker (the embedded one restarted empty) starts from scratch.
    assert DetectorRuntime(settings, cluster="c2").offsets == {}


def test_undecodable_records_are_skipped_but_consumed(tmp_path: Path) -> None:
    runtime = DetectorRuntime(settings_for(tmp_path), cluster="c1")
    bad = Record("p.otlp.spans", 1, 7, b"default/cart", b"\xff\xff garbage", [])
    runtime.fold("spans", [bad], wall_now=1.0)
    assert runtime.bad_records == 1 and runtime.offsets[("p.otlp.spans", 1)] == 8
