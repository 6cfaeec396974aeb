"""Lake writer throughput and commit cost.

1. flatten: serialized OTLP trace requests (512 spans each, 8 span and 6 resource attributes,
   an event on 1 span in 100) -> Arrow, single thread; against a naive flatten through the
   official protobuf classes measured in the same run. Then log requests (512 records, 4
   attributes, 1 in 8 outside a span) -> Arrow.
2. parquet: one flattened batch written with the lake's settings (zstd at Arrow's default
   level, dictionaries only where values repeat, no statistics for map entries) against other
   codecs, all-column dictionaries and all-column statistics, CPU time and file size, so the
   trade of each setting is visible.
3. end to end: N spans pre-produced to a fresh embedded broker in requests of 512; the ingestor
   (this process) drains them into Iceberg, without and with schema inference (promoted
   columns), best of ``--repeat`` runs. Wall time and this process's CPU time are both
   reported; spans per CPU-second is the per-core figure (the machine may be shared: wall
   throughput then understates it). A summary line per mode ends the run.
4. commit cost: small appends (10 rows) with the writer's offsets, timed around commit 10 and
   commit 500, with snapshot expiry on and off.

    python -m benchmarks.lake_bench [--spans 600000] [--repeat 1] [--commits 500]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import pyarrow as pa
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from emberlake.broker import EmbeddedBroker, port_is_free
from emberlake.settings import KafkaSettings, LakeSettings, Settings
from lake.flatten import SpanColumns
from lake.flatten.common import render

SPANS_PER_REQUEST = 512
ROUTES = [f"/api/v1/{name}" for name in ("cart", "checkout", "search", "items", "user", "pay")]


def _kv(key: str, value: object) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=str(value)))


def trace_request(service: str, rng: random.Random, spans: int = SPANS_PER_REQUEST) -> bytes:
    """One service's spans with the attribute mix of an instrumented HTTP service."""
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.extend(
        [
            _kv("service.name", service),
            _kv("service.version", "2.4.1"),
            _kv("host.name", f"{service}-{rng.randrange(4)}"),
            _kv("deployment.environment", "prod"),
            _kv("telemetry.sdk.language", "python"),
            _kv("process.pid", rng.randrange(1000, 60000)),
        ]
    )
    ss = rs.scope_spans.add()
    ss.scope.name = "opentelemetry.instrumentation.flask"
    ss.scope.version = "0.45b0"
    now = time.time_ns()
    for i in range(spans):
        span = ss.spans.add()
        span.trace_id = rng.randbytes(16)
        span.span_id = rng.randbytes(8)
        if i % 4:
            span.parent_span_id = rng.randbytes(8)
        route = rng.choice(ROUTES)
        span.name = f"GET {route}"
        span.kind = 2 if i % 4 == 0 else 3
        span.start_time_unix_nano = now + i * 1000
        span.end_time_unix_nano = now + i * 1000 + rng.randrange(10**5, 10**8)
        status = 500 if rng.random() < 0.02 else 200
        span.attributes.extend(
            [
                _kv("http.method", "GET"),
                _kv("http.route", route),
                _kv("http.status_code", status),
                _kv("http.target", f"{route}?page={rng.randrange(50)}"),
                _kv("net.peer.name", f"10.0.{rng.randrange(4)}.{rng.randrange(16)}"),
                _kv("user_agent.original", "Mozilla/5.0"),
                _kv("enduser.id", f"user-{rng.randrange(5000)}"),
                _kv("cache.hit", rng.random() < 0.5),
            ]
        )
        if status == 500:
            span.status.code = 2
        if i % 100 == 0:
            event = span.events.add(name="exception", time_unix_nano=now)
            event.attributes.extend([_kv("exception.type", "TimeoutError")])
    return request.SerializeToString()


def log_request(service: str, rng: random.Random, records: int = SPANS_PER_REQUEST) -> bytes:
    """One service's log records: request logs of an HTTP service, most inside a span."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    request = ExportLogsServiceRequest()
    rl = request.resource_logs.add()
    rl.resource.attributes.extend(
        [
            _kv("service.name", service),
            _kv("service.version", "2.4.1"),
            _kv("host.name", f"{service}-{rng.randrange(4)}"),
            _kv("deployment.environment", "prod"),
        ]
    )
    sl = rl.scope_logs.add()
    sl.scope.name = "app.requests"
    now = time.time_ns()
    for i in range(records):
        record = sl.log_records.add()
        record.time_unix_nano = now + i * 1000
        record.observed_time_unix_nano = now + i * 1000 + 500
        error = rng.random() < 0.05
        record.severity_number = 17 if error else 9
        record.severity_text = "ERROR" if error else "INFO"
        route = rng.choice(ROUTES)
        record.body.string_value = f"GET {route} took {rng.randrange(1, 900)} ms"
        if i % 8:
            record.trace_id = rng.randbytes(16)
            record.span_id = rng.randbytes(8)
            record.flags = 1
        record.attributes.extend(
            [
                _kv("http.route", route),
                _kv("http.status_code", 500 if error else 200),
                _kv("enduser.id", f"user-{rng.randrange(5000)}"),
                _kv("thread.name", f"worker-{rng.randrange(8)}"),
            ]
        )
    return request.SerializeToString()


def naive_flatten(payloads: list[bytes]) -> pa.Table:
    """A straightforward flatten through the official classes, as the baseline."""
    rows: list[dict[str, object]] = []
    for data in payloads:
        request = ExportTraceServiceRequest.FromString(data)
        for rs in request.resource_spans:
            resource = {kv.key: render(kv.value) for kv in rs.resource.attributes}
            for ss in rs.scope_spans:
                for span in ss.spans:
                    rows.append(
                        {
                            "start_time": span.start_time_unix_nano // 1000,
                            "end_time": span.end_time_unix_nano // 1000,
                            "duration_ms": (span.end_time_unix_nano - span.start_time_unix_nano)
                            / 1e6,
                            "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(),
                            "parent_span_id": span.parent_span_id.hex() or None,
                            "name": span.name,
                            "kind": span.kind,
                            "status_code": span.status.code,
                            "service_name": resource.get("service.name"),
                            "resource_attributes": list(resource.items()),
                            "scope_name": ss.scope.name,
                            "attributes": [(kv.key, render(kv.value)) for kv in span.attributes],
                        }
                    )
    return pa.Table.from_pylist(rows)


def _best(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    """Best CPU time of ``repeats`` runs: other load on the machine inflates wall time."""
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        fn()
        best = min(best, time.process_time() - started)
    return best


def bench_flatten(requests: int = 100, repeats: int = 5) -> None:
    rng = random.Random(1)
    payloads = [trace_request(f"svc{i % 8}", rng) for i in range(requests)]
    spans = requests * SPANS_PER_REQUEST

    def ours() -> None:
        columns = SpanColumns()
        for data in payloads:
            columns.add(data)
        columns.to_arrow()

    fast = _best(ours, repeats)
    slow = _best(lambda: naive_flatten(payloads), max(2, repeats // 2))
    print(
        f"flatten: {spans / fast / 1e3:,.0f} k spans/s "
        f"(naive {spans / slow / 1e3:,.0f} k spans/s, x{slow / fast:.1f}); "
        f"{fast / spans * 1e6:.2f} us/span, best CPU time of {repeats} over {spans:,} spans"
    )


def bench_flatten_logs(requests: int = 100, repeats: int = 5) -> None:
    from lake.flatten import LogColumns

    rng = random.Random(1)
    payloads = [log_request(f"svc{i % 8}", rng) for i in range(requests)]
    records = requests * SPANS_PER_REQUEST

    def ours() -> None:
        columns = LogColumns()
        for data in payloads:
            columns.add(data)
        columns.to_arrow()

    cpu = _best(ours, repeats)
    print(
        f"flatten logs: {records / cpu / 1e3:,.0f} k records/s; {cpu / records * 1e6:.2f} "
        f"us/record, best CPU time of {repeats} over {records:,} records"
    )


def bench_parquet(requests: int = 100, repeats: int = 3) -> None:
    import pyarrow.parquet as pq

    from lake import datafiles
    from lake.tables import arrow_schema_for, iceberg_schema

    rng = random.Random(1)
    columns = SpanColumns()
    for i in range(requests):
        columns.add(trace_request(f"svc{i % 8}", rng))
    schema = iceberg_schema(arrow_schema_for("spans"))
    rows = datafiles.conform(columns.to_arrow(), schema)
    spans = rows.num_rows
    lake_dictionary = datafiles._dictionary_columns(schema)
    _, lake_statistics = datafiles._statistics(schema, {})
    variants: list[tuple[str, dict[str, object]]] = [
        ("lake (zstd, dictionaries where values repeat, no map statistics)", {}),
        ("statistics on every column", {"write_statistics": True}),
        ("zstd level 3", {"compression_level": 3}),
        ("lz4", {"compression": "lz4"}),
        ("snappy", {"compression": "snappy"}),
        ("dictionaries on every column", {"use_dictionary": True}),
    ]
    sizes: dict[str, int] = {}

    def write(options: dict[str, object], label: str) -> None:
        sink = pa.BufferOutputStream()
        kwargs = {
            "compression": "zstd",
            "use_dictionary": lake_dictionary,
            "write_statistics": lake_statistics,
            **options,
        }
        with pq.ParquetWriter(sink, rows.schema, **kwargs) as writer:  # type: ignore[arg-type]
            writer.write_table(rows)
        sizes[label] = sink.getvalue().size

    for label, options in variants:
        cpu = _best(lambda o=options, n=label: write(o, n), repeats)  # type: ignore[misc]
        print(
            f"parquet: {label}: {cpu / spans * 1e6:.2f} us/span, "
            f"{sizes[label] / spans:.0f} bytes/span"
        )


def _settings(data: Path, bootstrap: str, **lake: object) -> Settings:
    return Settings(
        data_dir=str(data),
        kafka=KafkaSettings(bootstrap_servers=bootstrap, topic_prefix="bench", partitions=4),
        lake=LakeSettings(**lake),  # type: ignore[arg-type]
    )


def _free_port() -> int:
    for _ in range(100):
        port = random.randrange(20000, 60000)
        if port_is_free("127.0.0.1", port):
            return port
    raise RuntimeError("no free port")


def bench_end_to_end(
    total_spans: int, workdir: Path, promotion: bool = True
) -> tuple[float, float]:
    """Returns (spans/s wall, spans per CPU-second)."""
    from ingest.kafka import KafkaSink, ensure_emberlake_topics
    from ingest.topics import HEADER_SIGNAL, HEADER_TENANT, Topics, record_key
    from lake.ingestor import build_ingestor

    broker = EmbeddedBroker(_free_port(), workdir / "broker.log")
    broker.start()
    try:
        settings = _settings(
            workdir / "data",
            broker.bootstrap_servers,
            writer_group="bench",
            max_promoted_columns=64 if promotion else 0,
        )
        ensure_emberlake_topics(settings)
        rng = random.Random(2)
        requests = total_spans // SPANS_PER_REQUEST
        distinct = [trace_request(f"svc{i % 8}", rng) for i in range(min(requests, 64))]
        topic = Topics("bench").signal("spans")
        sink = KafkaSink(settings)
        started = time.perf_counter()
        for i in range(requests):
            service = f"svc{i % 8}"
            sink.send(
                topic,
                record_key("bench", service),
                distinct[i % len(distinct)],
                [(HEADER_TENANT, b"bench"), (HEADER_SIGNAL, b"spans")],
            )
        sink.close(60)
        produced = time.perf_counter() - started
        spans = requests * SPANS_PER_REQUEST
        print(f"end to end: produced {spans:,} spans in {produced:.1f}s")

        ingestor = build_ingestor(settings)
        ingestor.subscribe()
        # Wait for the group join before timing: that is broker latency, not writer cost.
        while not ingestor.assigned:
            ingestor.poll_once(timeout=0.2)
        ingestor.reset_timings()
        wall0, cpu0 = time.perf_counter(), time.process_time()
        while ingestor.committed_rows < spans:
            ingestor.poll_once(timeout=0.2)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        ingestor.flush()
        ingestor.close()
        stages = ", ".join(
            f"{name} {seconds / spans * 1e6:.2f}" for name, seconds in ingestor.timings.items()
        )
        print(f"end to end: wall us/span by stage: {stages}")
        print(
            f"end to end: {spans / wall / 1e3:,.0f} k spans/s wall, "
            f"{spans / cpu / 1e3:,.0f} k spans per CPU-second; {ingestor.commits} commits, "
            f"batch_max_rows {settings.lake.batch_max_rows:,}, "
            f"batch_max_seconds {settings.lake.batch_max_seconds}, "
            f"schema inference {'on' if promotion else 'off'}"
        )
        return spans / wall, spans / cpu
    finally:
        broker.stop()


def bench_commits(commits: int, workdir: Path) -> None:
    from lake.catalog import open_catalog
    from lake.flatten import flatten_spans
    from lake.maintenance import SnapshotExpiry
    from lake.writer import IcebergWriter, TableAppend

    rows = flatten_spans([trace_request("svc", random.Random(3), spans=10)])
    key = "emberlake.offset.bench.bench.otlp.spans.0"
    for label, expiry in (
        ("expiry off", None),
        ("expiry on ", SnapshotExpiry(every=20, retain_seconds=0, keep_min=5)),
    ):
        settings = _settings(workdir / label.strip().replace(" ", "-"), "127.0.0.1:1")
        writer = IcebergWriter(open_catalog(settings), expiry)
        timings: list[float] = []
        for i in range(commits):
            started = time.perf_counter()
            writer.append(TableAppend("bench", "spans", rows, {key: i + 1}, {key: i or None}))
            timings.append(time.perf_counter() - started)
        at10 = statistics.median(timings[5:15]) * 1000
        at_end = statistics.median(timings[-10:]) * 1000
        snapshots = len(writer.table("bench", "spans", refresh=True).snapshots())
        print(
            f"commit cost, {label}: {at10:.0f} ms at commit 10, {at_end:.0f} ms at commit "
            f"{commits} ({snapshots} snapshots kept)"
        )


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="lake_bench", description=__doc__)
    parser.add_argument("--spans", type=int, default=600_000)
    parser.add_argument("--repeat", type=int, default=1, help="end to end runs per mode (best)")
    parser.add_argument("--commits", type=int, default=500)
    parser.add_argument("--only", choices=("flatten", "parquet", "e2e", "commits"), default=None)
    args = parser.parse_args(argv)
    print(f"lake_bench on {os.cpu_count()} cores, pid {os.getpid()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="lake-bench-") as tmp:
        work = Path(tmp)
        if args.only in (None, "flatten"):
            bench_flatten()
            bench_flatten_logs()
        if args.only in (None, "parquet"):
            bench_parquet()
        summary: list[str] = []
        if args.only in (None, "e2e"):
            for promotion in (False, True):
                runs = [
                    bench_end_to_end(args.spans, work / f"e2e-{promotion}-{i}", promotion)
                    for i in range(max(1, args.repeat))
                ]
                wall, cpu = max(r[0] for r in runs), max(r[1] for r in runs)
                summary.append(
                    f"into Iceberg: {wall:,.0f} spans/s wall, {cpu:,.0f} spans per CPU-second "
                    f"(target 100k per core), schema inference {'on' if promotion else 'off'}, "
                    f"best of {len(runs)}"
                )
        if args.only in (None, "commits"):
            bench_commits(args.commits, work / "commits")
        for line in summary:
            print(line)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
