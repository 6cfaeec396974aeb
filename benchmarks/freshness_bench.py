"""Freshness: how long from the receiver's acknowledgement until a span is visible to SQL.

Starts a whole local system (``emberlake up`` with the embedded broker and default batching),
sends a steady background load over OTLP/gRPC, and every half second sends a probe span with a
unique name. A poller asks the query daemon for pending probes; freshness is the time from the
probe's acknowledgement to the first query that returns it.

    python -m benchmarks.freshness_bench [--seconds 60] [--rate 2000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from emberlake.errors import QueryError
from emberlake.local import LocalSystem


def make_request(service: str, names: list[str]) -> bytes:
    now = time.time_ns()
    spans = [
        trace_pb2.Span(
            trace_id=os.urandom(16),
            span_id=os.urandom(8),
            name=name,
            kind=trace_pb2.Span.SPAN_KIND_SERVER,
            start_time_unix_nano=now - 3_000_000,
            end_time_unix_nano=now,
            attributes=[
                common_pb2.KeyValue(key="http.route", value=common_pb2.AnyValue(string_value="/x")),
                common_pb2.KeyValue(
                    key="http.status_code", value=common_pb2.AnyValue(int_value=200)
                ),
            ],
        )
        for name in names
    ]
    req = trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=[
            trace_pb2.ResourceSpans(
                resource=resource_pb2.Resource(
                    attributes=[
                        common_pb2.KeyValue(
                            key="service.name", value=common_pb2.AnyValue(string_value=service)
                        )
                    ]
                ),
                scope_spans=[trace_pb2.ScopeSpans(spans=spans)],
            )
        ]
    )
    return req.SerializeToString()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=45.0)
    parser.add_argument("--rate", type=int, default=2000, help="background spans per second")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        system = LocalSystem(Path(tmp) / "data", only=("writer", "queryd", "receiver"))
        system.extra_env["EMBERLAKE_LAKE_BATCH_MAX_SECONDS"] = "2.0"
        system.start()
        try:
            run(system, args.seconds, args.rate)
        finally:
            system.stop()


def run(system: LocalSystem, seconds: float, rate: int) -> None:
    channel = grpc.insecure_channel(f"127.0.0.1:{system.grpc_port}")
    # A raw-bytes stub: requests are serialised once, outside the timed path.
    export = channel.unary_unary(
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        request_serializer=lambda b: b,
        response_deserializer=trace_service_pb2.ExportTraceServiceResponse.FromString,
    )
    stop = threading.Event()
    acked: dict[str, float] = {}
    seen: dict[str, float] = {}
    lock = threading.Lock()
    sent_spans = 0

    def load() -> None:
        nonlocal sent_spans
        per_call = 100
        interval = per_call / rate
        payload = make_request("load", ["GET /x"] * per_call)
        next_at = time.monotonic()
        while not stop.is_set():
            export(payload, timeout=30)
            sent_spans += per_call
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))

    def probes() -> None:
        while not stop.is_set():
            name = f"probe-{uuid.uuid4().hex[:12]}"
            export(make_request("probe", [name]), timeout=30)
            with lock:
                acked[name] = time.monotonic()
            stop.wait(0.5)

    def poll() -> None:
        while not stop.is_set() or len(seen) < len(acked):
            with lock:
                pending = [n for n in acked if n not in seen]
            if pending:
                names = ",".join(f"'{n}'" for n in pending)
                try:
                    rows = system.query(
                        f"SELECT name FROM spans WHERE service_name = 'probe' AND name IN ({names})"
                    )["rows"]
                except QueryError:
                    rows = []
                now = time.monotonic()
                for (name,) in rows:
                    seen.setdefault(name, now)
            if stop.is_set() and time.monotonic() > deadline + 30:
                break
            time.sleep(0.1)

    deadline = time.monotonic() + seconds
    threads = [threading.Thread(target=f, daemon=True) for f in (load, probes, poll)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    lags = [seen[n] - acked[n] for n in acked if n in seen]
    missing = len(acked) - len(lags)
    print(
        f"steady load: {sent_spans / seconds:,.0f} spans/s for {seconds:.0f}s; "
        f"{len(acked)} probes, {missing} never seen"
    )
    if lags:
        print(
            f"freshness (ack -> visible to POST /v1/query): p50 {statistics.median(lags):.2f}s, "
            f"p99 {percentile(lags, 0.99):.2f}s, max {max(lags):.2f}s (target p99 <= 5s)"
        )


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
