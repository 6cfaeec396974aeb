"""Receiver throughput: spans per second acknowledged into Kafka, and per CPU-second.

Two parts, one command:

1. Pure cost (no network): decode, validate and split 512-span requests, per span, for a
   one-service request (forwarded untouched), a four-service request (sliced), one with a bad
   span (the entry is re-encoded) and OTLP/JSON; against a baseline measured in the same run
   that parses and re-serializes one request per service, as a receiver built on the generated
   servicers would.
2. End to end: a broker (embedded, or ``--bootstrap``), ``emberlake receiver`` as its own process,
   and a grpc.aio client keeping ``--concurrency`` pre-built ExportTraceServiceRequests in flight.
   A request counts once the receiver answered OK, which it does only after Kafka acknowledged
   it. The receiver's CPU time (all its threads, librdkafka's included) gives spans per
   CPU-second; the record count in Kafka is checked against the acknowledged requests.

``--journal on`` runs the receiver with its ack journal (every acknowledged record also written
to local segment files before the answer); ``--journal compare`` runs it without and with, in
turns (``--repeat`` pairs), and prints the ratios.

    python -m benchmarks.receiver_bench [--seconds 10] [--concurrency 8] [--spans 512]
        [--journal off|on|compare] [--repeat 1] [--pure-only]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from emberlake.broker import EmbeddedBroker, wait_for_port
from emberlake.local import free_port
from emberlake.settings import KafkaSettings, ReceiverSettings, Settings, to_env
from ingest.kafka import consumer_config, ensure_emberlake_topics
from ingest.otlp_receiver import TRACES, decode_export
from ingest.otlp_receiver.otlp_json import request_to_json
from ingest.topics import Topics

ROOT = Path(__file__).resolve().parent.parent


def _kv(key: str, value: str | int) -> KeyValue:
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def build_request(spans: int, services: int = 1, seed: int = 0) -> ExportTraceServiceRequest:
    """Realistic HTTP server spans: 8 attributes each, an event on every tenth, 16 per trace."""
    rng = random.Random(seed)
    req = ExportTraceServiceRequest()
    now = time.time_ns()
    per_service = spans // services
    for s in range(services):
        rs = req.resource_spans.add()
        rs.resource.attributes.extend(
            [
                _kv("service.name", f"service-{s}"),
                _kv("service.version", "1.4.2"),
                _kv("host.name", f"node-{s:02d}"),
                _kv("deployment.environment.name", "bench"),
            ]
        )
        scope = rs.scope_spans.add()
        scope.scope.name = "bench"
        trace_id = b""
        for i in range(per_service):
            if i % 16 == 0:
                trace_id = rng.randbytes(16)
            span = scope.spans.add()
            span.trace_id = trace_id
            span.span_id = rng.randbytes(8)
            if i % 16:
                span.parent_span_id = rng.randbytes(8)
            span.name = f"GET /api/items/{{id}} {i % 7}"
            span.kind = Span.SPAN_KIND_SERVER
            span.start_time_unix_nano = now - 5_000_000 + i
            span.end_time_unix_nano = now + i
            span.attributes.extend(
                [
                    _kv("http.request.method", "GET"),
                    _kv("http.route", "/api/items/{id}"),
                    _kv("url.path", f"/api/items/{rng.randrange(10_000)}"),
                    _kv("http.response.status_code", 200 if i % 20 else 503),
                    _kv("server.address", "api.internal"),
                    _kv("server.port", 8080),
                    _kv("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64)"),
                    _kv("client.address", f"10.0.{i % 256}.{rng.randrange(256)}"),
                ]
            )
            if i % 10 == 0:
                event = span.events.add()
                event.name = "cache.miss"
                event.time_unix_nano = now - 1_000_000
                event.attributes.append(_kv("cache.key", f"item:{i}"))
    return req


def _per_span_us(fn: Callable[[], Any], spans: int, min_seconds: float = 1.0) -> float:
    """CPU time per span (process time, so other load on the machine does not count)."""
    fn()
    runs = 0
    started = time.process_time()
    while (elapsed := time.process_time() - started) < min_seconds:
        fn()
        runs += 1
    return elapsed / runs / spans * 1e6


def _baseline(raw: bytes) -> list[bytes]:
    """Parse, group by service, build and serialize one request per service."""
    req = ExportTraceServiceRequest.FromString(raw)
    groups: dict[str, ExportTraceServiceRequest] = {}
    for rs in req.resource_spans:
        name = next(
            (kv.value.string_value for kv in rs.resource.attributes if kv.key == "service.name"),
            "unknown_service",
        )
        groups.setdefault(name, ExportTraceServiceRequest()).resource_spans.append(rs)
    return [g.SerializeToString() for g in groups.values()]


def pure_costs(spans: int) -> None:
    one = build_request(spans).SerializeToString()
    four = build_request(spans, services=4).SerializeToString()
    bad_req = build_request(spans)
    bad_req.resource_spans[0].scope_spans[0].spans[5].span_id = b"bad"
    bad = bad_req.SerializeToString()
    as_json = request_to_json(build_request(spans))
    print(f"decode + validate + split, {spans} spans per request ({len(one) / spans:.0f} B/span)")
    rows: list[tuple[str, Callable[[], Any], bytes | None]] = [
        ("1 service, forwarded untouched", lambda: decode_export(TRACES, one), one),
        ("4 services, sliced", lambda: decode_export(TRACES, four), four),
        ("1 bad span, entry re-encoded", lambda: decode_export(TRACES, bad), bad),
        ("OTLP/JSON", lambda: decode_export(TRACES, as_json, "json"), None),
    ]
    for label, fn, raw in rows:
        us = _per_span_us(fn, spans)
        line = f"  {label:<32} {us:6.2f} us/span  {1e6 / us:>10,.0f} spans per CPU-second"
        if raw is not None:
            base = _per_span_us(functools.partial(_baseline, raw), spans)
            line += f"   baseline parse+re-serialize {base:5.2f} us/span ({base / us:.1f}x)"
        print(line, flush=True)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _drive(
    endpoint: str, body: bytes, concurrency: int, seconds: float, latencies: list[float]
) -> int:
    """Keep ``concurrency`` requests in flight for ``seconds``; return how many were acked."""
    options = [("grpc.max_send_message_length", 64 * 1024 * 1024)]
    async with grpc.aio.insecure_channel(endpoint, options=options) as channel:
        export = channel.unary_unary(
            f"/{TRACES.grpc_service}/Export",
            request_serializer=None,
            response_deserializer=TRACES.response_type.FromString,
        )
        end = time.monotonic() + seconds
        acked = 0

        async def worker() -> None:
            nonlocal acked
            while time.monotonic() < end:
                started = time.perf_counter()
                response = await export(body, timeout=60)
                latencies.append(time.perf_counter() - started)
                assert not response.HasField("partial_success"), response
                acked += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return acked


def _count_records(settings: Settings, expected: int, timeout: float = 120.0) -> int:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    topic = Topics(settings.kafka.topic_prefix).signal("spans")
    consumer = Consumer(consumer_config(settings, f"bench-{uuid.uuid4().hex[:8]}"))
    consumer.assign(
        [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(settings.kafka.partitions)]
    )
    seen = 0
    deadline = time.monotonic() + timeout
    quiet_until = None
    while time.monotonic() < deadline:
        msgs = consumer.consume(500, 0.2)
        seen += sum(1 for m in msgs if not m.error())
        if seen >= expected:
            quiet_until = quiet_until or time.monotonic() + 1.0
            if time.monotonic() > quiet_until:
                break
    consumer.close()
    return seen


def end_to_end(args: argparse.Namespace, journal: str = "off") -> dict[str, float]:
    """One end-to-end run; returns spans/s, spans per CPU-second and p50 latency (ms)."""
    broker = None if args.bootstrap else EmbeddedBroker(free_port())
    if broker is not None:
        broker.start()
    bootstrap = args.bootstrap or broker.bootstrap_servers  # type: ignore[union-attr]
    work = Path(tempfile.mkdtemp(prefix="receiver-bench-"))
    settings = Settings(
        data_dir=str(work),
        kafka=KafkaSettings(
            bootstrap_servers=bootstrap, topic_prefix=f"bench{uuid.uuid4().hex[:8]}"
        ),
        receiver=ReceiverSettings(
            grpc_port=free_port(),
            http_port=free_port(),
            journal=journal,
            journal_fsync=args.fsync,
        ),
    )
    ensure_emberlake_topics(settings)
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMBERLAKE_")}
    env.update(to_env(settings))
    env["PYTHONPATH"] = str(ROOT)
    log = (work / "receiver.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "emberlake.cli", "receiver"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=work,
    )
    try:
        endpoint = f"127.0.0.1:{settings.receiver.grpc_port}"
        wait_for_port("127.0.0.1", settings.receiver.grpc_port, 30)
        body = build_request(args.spans, services=args.services).SerializeToString()
        warm: list[float] = []
        warm_acked = asyncio.run(_drive(endpoint, body, args.concurrency, 2.0, warm))
        latencies: list[float] = []
        cpu_before, wall_before = _cpu_seconds(proc.pid), time.perf_counter()
        acked = asyncio.run(_drive(endpoint, body, args.concurrency, args.seconds, latencies))
        wall = time.perf_counter() - wall_before
        cpu = _cpu_seconds(proc.pid) - cpu_before
        spans = acked * args.spans
        latencies.sort()
        print(
            f"end to end over OTLP/gRPC: {args.spans} spans/request, {args.services} service(s),"
            f" {args.concurrency} in flight, {len(body) / 1024:.0f} KiB/request, {wall:.1f}s,"
            f" journal {journal}{' (fsync)' if journal == 'on' and args.fsync else ''}"
        )
        print(f"  acknowledged       {acked:,} requests = {spans:,} spans")
        print(f"  throughput         {spans / wall:,.0f} spans/s ({acked / wall:,.0f} requests/s)")
        print(
            f"  receiver CPU       {cpu:.2f} s over {wall:.1f} s ({cpu / wall:.0%} of one core)"
            f" -> {spans / cpu:,.0f} spans per CPU-second"
        )
        print(
            f"  latency            p50 {statistics.median(latencies) * 1e3:.1f} ms,"
            f" p99 {latencies[int(len(latencies) * 0.99) - 1] * 1e3:.1f} ms"
        )
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        expected = warm_acked + acked
        in_kafka = _count_records(settings, expected * args.services)
        print(f"  records in Kafka   {in_kafka:,} (expected {expected * args.services:,})")
        journal_dir = work / "receiver" / "journal"
        if journal == "on":
            size = sum(p.stat().st_size for p in journal_dir.glob("*"))
            print(f"  journal on disk    {size / 2**20:,.0f} MiB ({size / spans:.0f} B/span)")
        return {
            "spans_per_s": spans / wall,
            "spans_per_cpu_s": spans / cpu,
            "p50_ms": statistics.median(latencies) * 1e3,
        }
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
        if broker is not None:
            broker.stop()
        # The journal (hundreds of MiB per run); the receiver's log stays if the run failed.
        shutil.rmtree(work / "receiver", ignore_errors=True)


def compare_journal(args: argparse.Namespace) -> None:
    """Without and with the journal, in turns; ratios of the medians (with / without)."""
    runs: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
    for _ in range(args.repeat):
        for journal in ("off", "on"):
            runs[journal].append(end_to_end(args, journal))
    print("journal on vs off (median of each; ratio = on / off):")
    for key, label in [
        ("spans_per_s", "spans/s"),
        ("spans_per_cpu_s", "spans per CPU-second"),
        ("p50_ms", "p50 latency ms"),
    ]:
        off = statistics.median(r[key] for r in runs["off"])
        on = statistics.median(r[key] for r in runs["on"])
        print(f"  {label:<22} off {off:>10,.1f}   on {on:>10,.1f}   ratio {on / off:.3f}")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--spans", type=int, default=512)
    parser.add_argument("--services", type=int, default=1)
    parser.add_argument("--bootstrap", default="", help="use this broker instead of embedded")
    parser.add_argument("--pure-only", action="store_true", help="skip the end-to-end part")
    parser.add_argument(
        "--journal",
        choices=("off", "on", "compare"),
        default="off",
        help="the receiver's ack journal: off, on, or both in turns with ratios",
    )
    parser.add_argument("--fsync", action="store_true", help="journal with fsync per request")
    parser.add_argument("--repeat", type=int, default=1, help="pairs of runs for --journal compare")
    args = parser.parse_args(argv)
    if args.journal == "compare":
        compare_journal(args)
        return
    pure_costs(args.spans)
    if not args.pure_only:
        end_to_end(args, args.journal)


if __name__ == "__main__":
    main(sys.argv[1:])
