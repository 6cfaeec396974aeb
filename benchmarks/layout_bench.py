"""Layout adaptation and compaction: one query workload on the same spans, four ways.

Writes ``--appends`` small commits of realistic spans (several services, ``--hours`` of event
time, sub-minute batches) through the lake writer's ``IcebergWriter`` into a table with the
default layout, and runs a fixed workload (time windows, a service filter, trace lookups,
aggregations) through queryd's ``DuckDBEngine``, logging it to the query log as queryd does.
The layout policy then reads the table's statistics and that log; its proposal is applied to a
second table before the same commits are written to it. Both tables are then compacted.

Measured, median of ``--repeat`` runs per query, in one run:

- default layout, fresh (small files) and compacted;
- adapted layout, fresh and compacted;
- for the compacted tables also "pruned": files planned with the query's predicate through
  Iceberg (partition values and column bounds), as an engine that prunes by equality would read.

The policy's thresholds are the defaults scaled down by ``--scale`` (like the data), so the
decisions it makes here are the ones it would make on a table that much larger.

    python -m benchmarks.layout_bench [--appends 1000] [--rows 400] [--hours 48] [--repeat 5]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
from pyiceberg.expressions import (
    AlwaysTrue,
    And,
    BooleanExpression,
    EqualTo,
    GreaterThanOrEqual,
    LessThan,
)
from pyiceberg.table import Table

from emberlake.settings import LakeSettings, Settings
from lake.catalog import open_catalog
from lake.compaction import CompactionOptions, compact_table
from lake.layout import apply_proposal, propose_layout
from lake.maintenance import SnapshotExpiry
from lake.offsets import offset_property
from lake.tables import ensure_table
from lake.writer import IcebergWriter, TableAppend
from queryd.engine import DuckDBEngine, view_sql
from queryd.querylog import JsonLinesQueryLog, QueryRecord
from queryd.scans import TableScan, local_path

T0 = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
SERVICES = ("frontend", "checkout", "cart", "payments", "search", "catalog", "shipping", "email")
#: Busy services send more spans.
WEIGHTS = np.array([0.3, 0.15, 0.15, 0.1, 0.1, 0.1, 0.05, 0.05])
ROUTES = ("/", "/cart", "/checkout", "/api/products", "/api/search", "/api/pay", "/health")
KEY = offset_property("bench", "bench.otlp.spans", 0)


@dataclasses.dataclass(frozen=True)
class Query:
    name: str
    sql: str
    #: The same predicate as an Iceberg expression, for the "pruned" reading.
    predicate: BooleanExpression
    #: Times it appears in the logged workload.
    weight: int


def trace_hex(n: int) -> str:
    return f"{(n * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) % (1 << 128):032x}"


def spans(i: int, rows: int, appends: int, hours: int, rng: np.random.Generator) -> pa.Table:
    """Append ``i``: ``rows`` spans in its slice of the time range, traces of ~4 spans."""
    slice_us = int(hours * 3600e6 / appends)
    start_us = int(T0.timestamp() * 1e6) + i * slice_us
    starts = np.sort(start_us + rng.integers(0, slice_us, rows))
    durations = rng.gamma(2.0, 25.0, rows)
    service_ix = rng.choice(len(SERVICES), size=rows, p=WEIGHTS)
    traces = [trace_hex(i * rows + k // 4) for k in range(rows)]
    errors = rng.random(rows) < np.where(service_ix == 3, 0.08, 0.01)
    route_ix = rng.integers(0, len(ROUTES), rows)
    return pa.table(
        {
            "start_time": pa.array(starts, pa.timestamp("us", "UTC")),
            "end_time": pa.array(
                starts + (durations * 1000).astype(np.int64), pa.timestamp("us", "UTC")
            ),
            "duration_ms": pa.array(durations),
            "trace_id": pa.array(traces),
            "span_id": pa.array(
                [f"{(i * rows + k) * 2654435761 % (1 << 64):016x}" for k in range(rows)]
            ),
            "parent_span_id": pa.array(
                [
                    None if k % 4 == 0 else f"{(i * rows + k - 1) * 2654435761 % (1 << 64):016x}"
                    for k in range(rows)
                ]
            ),
            "name": pa.array([f"{'GET' if r % 3 else 'POST'} {ROUTES[r]}" for r in route_ix]),
            "kind": pa.array(np.where(np.arange(rows) % 4 == 0, "SERVER", "CLIENT")),
            "status_code": pa.array(np.where(errors, "ERROR", "OK")),
            "service_name": pa.array(np.array(SERVICES)[service_ix]),
            "resource_attributes": pa.array(
                [
                    [("service.name", SERVICES[s]), ("host.name", f"node-{s % 3}")]
                    for s in service_ix
                ],
                pa.map_(pa.string(), pa.string()),
            ),
            "attributes": pa.array(
                [
                    [("http.route", ROUTES[r]), ("http.status_code", "500" if e else "200")]
                    for r, e in zip(route_ix, errors, strict=True)
                ],
                pa.map_(pa.string(), pa.string()),
            ),
            "events": pa.array(["[]"] * rows),
            "links": pa.array(["[]"] * rows),
        }
    )


def ingest(settings: Settings, tenant: str, batches: list[pa.Table]) -> float:
    """Append every batch as one commit through the lake writer; returns seconds taken."""
    writer = IcebergWriter(open_catalog(settings), SnapshotExpiry(20, 0.0, 5))
    offset: int | None = None
    started = time.perf_counter()
    for rows in batches:
        nxt = (offset or 0) + rows.num_rows
        writer.append(TableAppend(tenant, "spans", rows, {KEY: nxt}, {KEY: offset}))
        offset = nxt
    return time.perf_counter() - started


def workload(hours: int, batches: list[pa.Table]) -> list[Query]:
    last = T0 + dt.timedelta(hours=hours - 1)

    def ts(t: dt.datetime) -> str:
        return f"TIMESTAMPTZ '{t.isoformat()}'"

    def window(t0: dt.datetime, t1: dt.datetime) -> BooleanExpression:
        return And(
            GreaterThanOrEqual("start_time", t0.isoformat()), LessThan("start_time", t1.isoformat())
        )

    end = last + dt.timedelta(hours=1)
    six = last - dt.timedelta(hours=5)
    day = end - dt.timedelta(hours=24)
    trace = batches[len(batches) // 3].column("trace_id")[5].as_py()
    return [
        Query(
            "1h window, by service",
            "SELECT service_name, count(*) AS n, avg(duration_ms) AS mean_ms FROM spans"
            f" WHERE start_time >= {ts(last)} AND start_time < {ts(end)} GROUP BY 1 ORDER BY 1",
            window(last, end),
            10,
        ),
        Query(
            "6h, one service, p95 by name",
            "SELECT name, quantile_cont(duration_ms, 0.95) AS p95 FROM spans"
            f" WHERE service_name = 'payments' AND start_time >= {ts(six)}"
            f" AND start_time < {ts(end)} GROUP BY 1 ORDER BY 1",
            And(EqualTo("service_name", "payments"), window(six, end)),
            10,
        ),
        Query(
            "trace lookup",
            "SELECT span_id, name, service_name, duration_ms FROM spans"
            f" WHERE trace_id = '{trace}'",
            EqualTo("trace_id", trace),
            10,
        ),
        Query(
            "24h error rate per hour, one service",
            "SELECT date_trunc('hour', start_time) AS h,"
            " avg(CASE WHEN status_code = 'ERROR' THEN 1.0 ELSE 0.0 END) AS error_rate"
            f" FROM spans WHERE service_name = 'checkout' AND start_time >= {ts(day)}"
            " GROUP BY 1 ORDER BY 1",
            And(
                EqualTo("service_name", "checkout"),
                GreaterThanOrEqual("start_time", day.isoformat()),
            ),
            10,
        ),
        Query(
            "errors by service, all data",
            "SELECT service_name, count(*) FILTER (WHERE status_code = 'ERROR') AS errors,"
            " count(*) AS n FROM spans GROUP BY 1 ORDER BY 1",
            AlwaysTrue(),
            5,
        ),
    ]


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm: plans cached, OS page cache
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000.0)
    return statistics.median(times)


def run_engine(engine: DuckDBEngine, tenant: str, queries: list[Query], repeat: int) -> dict:
    out = {}
    for q in queries:
        ms = median_ms(lambda q=q: engine.query(tenant, q.sql), repeat)
        read, total = engine.query(tenant, q.sql).files["spans"]
        out[q.name] = (ms, read, total)
    return out


def run_pruned(table: Table, queries: list[Query], repeat: int) -> dict:
    """DuckDB over only the files Iceberg plans for the predicate (partition values and column
    bounds), read the way queryd reads them; planning is done once, as a plan cache would."""
    out = {}
    total = len(list(table.scan().plan_files()))
    con = duckdb.connect(config={"threads": 2})
    con.execute("SET TimeZone = 'UTC'")
    for q in queries:
        tasks = table.scan(row_filter=q.predicate).plan_files()
        files = tuple(local_path(t.file.file_path) for t in tasks)
        scan = TableScan("spans", "bench.spans", None, table.schema(), files)
        con.execute("DROP VIEW IF EXISTS spans")
        con.execute(view_sql(scan))
        ms = median_ms(lambda q=q: con.execute(q.sql).fetchall(), repeat)
        out[q.name] = (ms, len(files), total)
    con.close()
    return out


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--appends", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=400, help="spans per append")
    parser.add_argument("--hours", type=int, default=48)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--scale", type=int, default=64, help="threshold divisor")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(11)
    batches = [spans(i, args.rows, args.appends, args.hours, rng) for i in range(args.appends)]
    queries = workload(args.hours, batches)
    defaults = LakeSettings()
    lake = LakeSettings(
        layout_day_split_bytes=defaults.layout_day_split_bytes // args.scale,
        layout_min_partition_bytes=defaults.layout_min_partition_bytes // args.scale,
        compact_target_file_bytes=defaults.compact_target_file_bytes // args.scale,
        compact_small_file_bytes=defaults.compact_small_file_bytes // args.scale,
    )
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=str(Path(tmp) / "data"), lake=lake)
        catalog = open_catalog(settings)
        default = ensure_table(catalog, "base", "spans")
        seconds = ingest(settings, "base", batches)
        rows = args.appends * args.rows
        print(
            f"wrote {rows:,} spans in {args.appends} commits in {seconds:.1f}s"
            f" ({args.appends / seconds:.1f} commits/s)"
        )

        engine = DuckDBEngine(settings)
        results: dict[str, dict] = {}
        results["default fresh"] = run_engine(engine, "base", queries, args.repeat)
        querylog = JsonLinesQueryLog(settings.data_path / "querylog")
        for q in queries:
            for _ in range(q.weight):
                querylog.record(QueryRecord("base", q.sql, True, 10.0, tables=["spans"]))

        default.refresh()
        proposal = propose_layout(settings, "base", default)
        print(f"\npolicy: {proposal.current}\n     -> {proposal.target}")
        for change in proposal.changes:
            print(f"  - {change.describe()}\n    evidence {json.dumps(dict(change.evidence))}")

        adapted = ensure_table(catalog, "adapted", "spans")
        apply_proposal(adapted, dataclasses.replace(proposal, table="adapted.spans"))
        ingest(settings, "adapted", batches)
        results["adapted fresh"] = run_engine(engine, "adapted", queries, args.repeat)

        options = CompactionOptions.from_settings(settings)
        files = {}
        for name, table in (("default", default), ("adapted", adapted)):
            table.refresh()
            done = compact_table(table, options)
            files[f"{name} fresh"] = done.files_before
            files[f"{name} compacted"] = done.files_after
            print(
                f"compacted {name}: {done.files_before} -> {done.files_after} files"
                f" in {done.seconds:.1f}s ({done.commits} commits)"
            )
        results["default compacted"] = run_engine(engine, "base", queries, args.repeat)
        results["adapted compacted"] = run_engine(engine, "adapted", queries, args.repeat)
        default.refresh()
        adapted.refresh()
        results["default compacted, pruned"] = run_pruned(default, queries, args.repeat)
        results["adapted compacted, pruned"] = run_pruned(adapted, queries, args.repeat)
        engine.close()

    print(f"\nfiles: {files}")
    print("\nmedian ms (files read/total), DuckDBEngine unless 'pruned'")
    states = list(results)
    print(f"{'query':38s}" + "".join(f"{s:>28s}" for s in states))
    for q in queries:
        cells = "".join(
            f"{ms:>16.1f} ({read:>4d}/{total:<4d})"
            for ms, read, total in (results[s][q.name] for s in states)
        )
        print(f"{q.name:38s}{cells}")
    total = {s: sum(v[0] for v in results[s].values()) for s in states}
    print(f"{'workload total':38s}" + "".join(f"{total[s]:>28.1f}" for s in states))

    def ratio(a: str, b: str) -> str:
        return f"{total[a] / total[b]:.2f}x"

    print("\nratios (workload total):")
    print(f"  default: fresh / compacted            {ratio('default fresh', 'default compacted')}")
    print(f"  adapted: fresh / compacted            {ratio('adapted fresh', 'adapted compacted')}")
    print(f"  fresh: default / adapted              {ratio('default fresh', 'adapted fresh')}")
    print(
        f"  compacted: default / adapted          {ratio('default compacted', 'adapted compacted')}"
    )
    print(
        f"  pruned compacted: default / adapted   "
        f"{ratio('default compacted, pruned', 'adapted compacted, pruned')}"
    )
    for q in queries:
        a, b = results["default compacted"][q.name][0], results["adapted compacted"][q.name][0]
        print(f"  {q.name:36s} compacted default/adapted {a / b:5.2f}x")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
