"""Hostile OTLP against a running receiver process, with a lake writer behind it.

Each request gets the right status; the receiver's memory stays bounded; a well-behaved client
sending at the same time keeps getting acknowledgements and its data lands; what the receiver
accepts but the lake cannot store goes to the tenant's ``dead_letters`` table with the reason,
without holding up the partition.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from emberlake.loadgen import AckedSpanSender
from emberlake.settings import Settings
from ingest.kafka import ensure_emberlake_topics
from ingest.otlp_receiver.signals import METRICS, TRACES
from lake.catalog import open_catalog
from tests.faults.harness import (
    Component,
    assert_exactly_once,
    lake_uid_counts,
    rss_mb,
    wait_until,
)
from tests.ingest.harness import grpc_export, http_request
from tests.security import hostile

pytestmark = pytest.mark.integration

PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}
LIMIT = 4 * 1024 * 1024


@dataclasses.dataclass
class Running:
    settings: Settings
    receiver: Component
    writer: Component

    @property
    def traces_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.receiver.http_port}/v1/traces"

    @property
    def grpc(self) -> str:
        return f"127.0.0.1:{self.settings.receiver.grpc_port}"


@pytest.fixture
def running(settings: Settings, tmp_path: Path) -> Iterator[Running]:
    settings = settings.replace(
        receiver=dataclasses.replace(settings.receiver, max_request_bytes=LIMIT),
        lake=dataclasses.replace(settings.lake, batch_max_seconds=0.3),
    )
    ensure_emberlake_topics(settings)
    receiver = Component(settings, ["receiver"], tmp_path / "receiver.log").start()
    writer = Component(settings, ["writer", "--drain-seconds", "5"], tmp_path / "writer.log")
    writer.start()
    receiver.wait_port(settings.receiver.http_port)
    yield Running(settings, receiver, writer)
    assert writer.stop() == 0, writer.log()
    assert receiver.stop() == 0, receiver.log()


class PeakRss:
    """Samples a process's resident memory in the background; keeps the peak."""

    def __init__(self, pid: int):
        self.pid = pid
        self.start = rss_mb(pid)
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_mb(self.pid))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak - self.start


def _http_status(reply_body: bytes, content_type: str) -> status_pb2.Status:
    if "json" in content_type:
        doc = json.loads(reply_body)
        return status_pb2.Status(code=int(doc.get("code", 0)), message=doc.get("message", ""))
    return status_pb2.Status.FromString(reply_body)


def test_hostile_requests_get_the_right_status(running: Running) -> None:
    run = uuid.uuid4().hex[:8]
    good = AckedSpanSender(running.grpc, run, batch=10, interval=0.05).start()
    peak = PeakRss(running.receiver.pid)
    url = running.traces_url
    deep_ok = f"{run}-deep-25"
    nan_uid, wide_uid, zero_uid, far_uid, epoch_uid = (
        f"{run}-{n}" for n in ("nan", "wide", "zero", "far", "epoch")
    )
    cases: list[tuple[str, int, object]] = []
    try:
        valid = hostile.span_request(f"{run}-valid").SerializeToString()

        def http(name: str, body: bytes, headers: dict[str, str], expect: int) -> None:
            reply = http_request(url, body, headers, timeout=60)
            cases.append((name, reply.status, expect))
            if reply.status != 200:
                status = _http_status(reply.body, reply.headers.get("Content-Type", ""))
                assert status.message, f"{name}: error without a message"
            else:
                ExportTraceServiceResponse.FromString(reply.body)

        def rpc(name: str, body: bytes, expect: grpc.StatusCode, signal=TRACES) -> None:  # type: ignore[no-untyped-def]
            reply = grpc_export(running.grpc, signal, body, timeout=60)
            cases.append((name, reply.code, expect))

        http("malformed protobuf", b"\xff\xff\xff\xff\x0f", PROTOBUF, 400)
        rpc("malformed protobuf", b"\x0a\xff\xff\xff\xff\x0f", grpc.StatusCode.INVALID_ARGUMENT)
        http("malformed JSON", b'{"resourceSpans": [', JSON, 400)
        http("JSON of the wrong shape", b'{"resourceSpans": 7}', JSON, 400)
        http(
            "truncated gzip",
            gzip.compress(valid)[:-12],
            {**PROTOBUF, "Content-Encoding": "gzip"},
            400,
        )
        http(
            "gzip bomb",
            hostile.gzip_bomb(512 * 1024 * 1024),
            {**PROTOBUF, "Content-Encoding": "gzip"},
            413,
        )
        http("huge body", b"\0" * (LIMIT + 1), PROTOBUF, 413)
        rpc(
            "huge message",
            valid + b"\x12" + b"\0" * (LIMIT + 1024),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
        )
        http("unknown content type", valid, {"Content-Type": "text/plain"}, 415)
        # Past protobuf's recursion limit: refused whole, never a crash or a stack overflow.
        http("nested 10,000 deep", hostile.deep_span_request(run, 10_000), PROTOBUF, 400)
        rpc(
            "nested 10,000 deep",
            hostile.deep_span_request(run, 10_000),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        http("JSON nested 10,000 deep", hostile.deep_json(10_000), JSON, 400)
        # Within the limit (three messages per level): accepted, and the writer must cope.
        http("nested 25 deep", hostile.deep_span_request(deep_ok, 25), PROTOBUF, 200)
        http("invalid UTF-8", hostile.invalid_utf8_request(), PROTOBUF, 400)
        rpc("invalid UTF-8", hostile.invalid_utf8_request(), grpc.StatusCode.INVALID_ARGUMENT)
        http(
            "invalid UTF-8 in JSON",
            b'{"resourceSpans": [{"resource": {"attributes": [{"key": "\xff"}]}}]}',
            JSON,
            400,
        )
        http(
            "NaN and Inf",
            hostile.special_doubles_request(nan_uid).SerializeToString(),
            PROTOBUF,
            200,
        )
        rpc(
            "NaN metrics",
            hostile.special_doubles_metrics().SerializeToString(),
            grpc.StatusCode.OK,
            METRICS,
        )
        http(
            "10,000 attributes",
            hostile.wide_span_request(wide_uid, 10_000).SerializeToString(),
            PROTOBUF,
            200,
        )
        http(
            "zero timestamps",
            hostile.span_request(zero_uid, start_ns=0, end_ns=0).SerializeToString(),
            PROTOBUF,
            200,
        )
        http(
            "start at 0, end now",
            hostile.span_request(epoch_uid, start_ns=0).SerializeToString(),
            PROTOBUF,
            200,
        )
        far = 2**64 - 1  # the largest fixed64: the year 2554, past what int64 ns can hold
        http(
            "timestamps at 2^64-1",
            hostile.span_request(far_uid, start_ns=far, end_ns=far).SerializeToString(),
            PROTOBUF,
            200,
        )
        http("negative JSON timestamps", hostile.json_span(f"{run}-neg", "-1000", "-5"), JSON, 400)
        http(
            "JSON year 9999",
            hostile.json_span(f"{run}-9999", "253402300799000000000", "253402300799000000000"),
            JSON,
            400,
        )
        acked = good.log.acked_count()
        wait_until(lambda: good.log.acked_count() >= acked + 100, 60, "the good client's acks")
    finally:
        good.stop()
        growth = peak.stop()
    wrong = [(name, got, want) for name, got, want in cases if got != want]
    assert not wrong, wrong
    assert growth < 300, f"receiver memory grew by {growth:.0f} MB"
    assert running.receiver.alive()
    assert len(good.log.acked()) == len(good.log.sent()), "the good client was refused"

    # The good client's spans and every accepted hostile span are stored, or set aside with a
    # reason; nothing holds up the partition (the good spans sent after them land too).
    settings = running.settings
    stored = {deep_ok, nan_uid, wide_uid, zero_uid, far_uid, epoch_uid}
    wait_until(
        lambda: set(lake_uid_counts(settings, ["default.spans"])) >= good.log.acked() | stored,
        90,
        "the good and the storable hostile spans in the lake",
        0.5,
    )
    counts = lake_uid_counts(settings, ["default.spans"])
    assert_exactly_once(counts, good.log.acked() | stored)
    catalog = open_catalog(settings)
    rows = (
        catalog.load_table("default.spans")
        .scan(selected_fields=("attributes", "start_time", "end_time"))
        .to_arrow()
        .to_pylist()
    )
    by_uid = {dict(r["attributes"]).get("test.uid"): r for r in rows}
    assert dict(by_uid[nan_uid]["attributes"])["nan"] == "nan"
    assert dict(by_uid[nan_uid]["attributes"])["inf"] == "inf"
    assert len(by_uid[wide_uid]["attributes"]) == 10_001
    assert by_uid[zero_uid]["start_time"] is None or by_uid[zero_uid]["start_time"].year == 1970
    # Past what int64 nanoseconds hold, still the right instant in microseconds.
    assert by_uid[far_uid]["start_time"].year == 2554
    weird = catalog.load_table("default.metrics").scan().to_arrow().to_pylist()
    values = sorted(str(r["value"]) for r in weird if r["metric_name"] == "weird")
    assert values == ["-inf", "inf", "nan"]
