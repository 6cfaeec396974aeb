"""Layout adaptation and compaction: one query workload on the same spans, six ways.

Writes ``--appends`` small commits of realistic spans (several services, ``--hours`` of event
time, random trace ids) through the lake writer's ``IcebergWriter`` into a table with the
default layout, and runs a fixed workload (time windows, a service filter, a trace lookup,
aggregations) through queryd's ``DuckDBEngine``, logging it to the query log as queryd does.
The layout policy then reads the table's statistics and that log; its proposal is applied to a
second table before the same commits are written to it.

States, each measured for the same data and workload:

- **fresh**: every commit still a small file (no compaction ever ran);
- **live**: what the running maintainer leaves: all compacted but the last ``--live`` commits;
- **compacted**: everything compacted;

each for the default and the adapted layout, through ``DuckDBEngine`` (which prunes files by
time window, and by string equality on partition values and column bounds) and through
"pruned" reads: DuckDB over the files Iceberg plans for the query's whole predicate, planned
once as a plan cache would.
Times are the fastest of ``--repeat`` runs (the least disturbed by other processes).

The policy's thresholds and compaction sizes are the defaults divided by ``--scale``, like the
data, so its decisions are the ones it would make on a table that much larger. The cost of
opening a file (``layout_file_open_bytes``) is not scaled: it belongs to the engine and the
machine, which stay the same size, so the policy weighs file counts as they cost here.

    python -m benchmarks.layout_bench [--appends 1000] [--rows 400] [--scale 64] [--repeat 7]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import functools
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
from pyiceberg.expressions import AlwaysTrue, BooleanExpression
from pyiceberg.expressions.parser import parse
from pyiceberg.table import Table

from emberlake.settings import LakeSettings, Settings
from lake.catalog import open_catalog
from lake.compaction import CompactionOptions, compact_table
from lake.layout import (
    apply_proposal,
    collect_stats,
    propose_layout,
    thresholds_from,
    workload_of,
)
from lake.maintenance import SnapshotExpiry
from lake.offsets import offset_property
from lake.partitioning import LayoutField, Proposal, workload_cost
from lake.partitioning.policy import day_bytes
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


def spans(i: int, rows: int, appends: int, hours: int, rng: np.random.Generator) -> pa.Table:
    """Append ``i``: ``rows`` spans in its slice of the time range, traces of ~4 spans."""
    slice_us = int(hours * 3600e6 / appends)
    start_us = int(T0.timestamp() * 1e6) + i * slice_us
    starts = np.sort(start_us + rng.integers(0, slice_us, rows))
    durations = rng.gamma(2.0, 25.0, rows)
    service_ix = rng.choice(len(SERVICES), size=rows, p=WEIGHTS)
    # Random 128-bit trace ids, as tracers make them: ids say nothing about time or service.
    trace_ids = [rng.bytes(16).hex() for _ in range((rows + 3) // 4)]
    traces = [trace_ids[k // 4] for k in range(rows)]
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


def ingest(
    settings: Settings, tenant: str, batches: list[pa.Table], offset: int | None = None
) -> tuple[float, int | None]:
    """Append each batch as one commit through the lake writer; returns (seconds, offset)."""
    writer = IcebergWriter(open_catalog(settings), SnapshotExpiry(20, 0.0, 5))
    started = time.perf_counter()
    for rows in batches:
        nxt = (offset or 0) + rows.num_rows
        writer.append(TableAppend(tenant, "spans", rows, {KEY: nxt}, {KEY: offset}))
        offset = nxt
    return time.perf_counter() - started, offset


def workload(hours: int, batches: list[pa.Table]) -> list[Query]:
    last = T0 + dt.timedelta(hours=hours - 1)

    def ts(t: dt.datetime) -> str:
        return f"TIMESTAMPTZ '{t.isoformat()}'"

    def window(t0: dt.datetime, t1: dt.datetime) -> str:
        return f"start_time >= '{t0.isoformat()}' AND start_time < '{t1.isoformat()}'"

    end = last + dt.timedelta(hours=1)
    six = last - dt.timedelta(hours=5)
    day = end - dt.timedelta(hours=24)
    trace = batches[len(batches) // 3].column("trace_id")[5].as_py()
    return [
        Query(
            "1h window, by service",
            "SELECT service_name, count(*) AS n, avg(duration_ms) AS mean_ms FROM spans"
            f" WHERE start_time >= {ts(last)} AND start_time < {ts(end)} GROUP BY 1 ORDER BY 1",
            parse(window(last, end)),
            10,
        ),
        Query(
            "6h, one service, p95 by name",
            "SELECT name, quantile_cont(duration_ms, 0.95) AS p95 FROM spans"
            f" WHERE service_name = 'payments' AND start_time >= {ts(six)}"
            f" AND start_time < {ts(end)} GROUP BY 1 ORDER BY 1",
            parse(f"service_name = 'payments' AND {window(six, end)}"),
            10,
        ),
        Query(
            "trace lookup",
            "SELECT span_id, name, service_name, duration_ms FROM spans"
            f" WHERE trace_id = '{trace}'",
            parse(f"trace_id = '{trace}'"),
            10,
        ),
        Query(
            "24h error rate per hour, one service",
            "SELECT date_trunc('hour', start_time) AS h,"
            " avg(CASE WHEN status_code = 'ERROR' THEN 1.0 ELSE 0.0 END) AS error_rate"
            f" FROM spans WHERE service_name = 'checkout' AND start_time >= {ts(day)}"
            " GROUP BY 1 ORDER BY 1",
            parse(f"service_name = 'checkout' AND start_time >= '{day.isoformat()}'"),
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


def best_ms(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Fastest of ``repeat`` runs of each function after a warm-up, the functions taking turns
    run by run so that all see the same disturbance from other processes."""
    for fn in fns.values():
        fn()  # warm: plans cached, OS page cache
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            started = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - started) * 1000.0)
    return {name: min(t) for name, t in times.items()}


def run_engine(
    engine: DuckDBEngine, tenants: dict[str, str], queries: list[Query], repeat: int
) -> dict[str, dict]:
    """Per state (tenant whose spans table holds it): per query (best ms, files read, total)."""
    out: dict[str, dict] = {state: {} for state in tenants}
    for q in queries:
        fns: dict[str, Callable[[], object]] = {
            state: functools.partial(engine.query, tenant, q.sql)
            for state, tenant in tenants.items()
        }
        for state, ms in best_ms(fns, repeat).items():
            read, total = engine.query(tenants[state], q.sql).files["spans"]
            out[state][q.name] = (ms, read, total)
    return out


def _fetch_all(con: duckdb.DuckDBPyConnection, sql: str) -> object:
    return con.execute(sql).fetchall()


def run_pruned(tables: dict[str, Table], queries: list[Query], repeat: int) -> dict[str, dict]:
    """DuckDB over only the files Iceberg plans for the predicate (partition values and column
    bounds), read the way queryd reads them; planning is done once, as a plan cache would."""
    out: dict[str, dict] = {state: {} for state in tables}
    cons = {state: duckdb.connect(config={"threads": 2}) for state in tables}
    for con in cons.values():
        con.execute("SET TimeZone = 'UTC'")
    totals = {state: len(list(t.scan().plan_files())) for state, t in tables.items()}
    for q in queries:
        read: dict[str, int] = {}
        for state, table in tables.items():
            tasks = table.scan(row_filter=q.predicate).plan_files()
            files = tuple(local_path(t.file.file_path) for t in tasks)
            scan = TableScan("spans", "bench.spans", None, table.schema(), files)
            cons[state].execute("DROP VIEW IF EXISTS spans")
            cons[state].execute(view_sql(scan))
            read[state] = len(files)
        fns: dict[str, Callable[[], object]] = {
            state: functools.partial(_fetch_all, con, q.sql) for state, con in cons.items()
        }
        for state, ms in best_ms(fns, repeat).items():
            out[state][q.name] = (ms, read[state], totals[state])
    for con in cons.values():
        con.close()
    return out


def build(
    settings: Settings, name: str, batches: list[pa.Table], live: int, proposal: Proposal | None
) -> tuple[Table, Table, float]:
    """Table ``name`` with every batch uncompacted, and ``name + "live"``: the same commits as
    the maintainer leaves them, all compacted but the last ``live`` ones. Returns both and the
    seconds the full ingest took."""
    catalog = open_catalog(settings)
    fresh = ensure_table(catalog, name, "spans")
    # The copy below shares metadata history with this table: neither may delete old metadata
    # files, one's current file is the other's history.
    fresh.transaction().set_properties(
        {"write.metadata.delete-after-commit.enabled": "false"}
    ).commit_transaction()
    if proposal is not None:
        apply_proposal(fresh, dataclasses.replace(proposal, table=f"{name}.spans"))
    head, tail = batches[:-live], batches[-live:]
    seconds, offset = ingest(settings, name, head)
    # A second table sharing the files so far: an Iceberg table is its metadata file.
    catalog.create_namespace(f"{name}live")
    fresh.refresh()
    steady = catalog.register_table((f"{name}live", "spans"), fresh.metadata_location)
    compact_table(steady, CompactionOptions.from_settings(settings))
    ingest(settings, f"{name}live", tail, offset)
    more, _ = ingest(settings, name, tail, offset)
    fresh.refresh()
    steady.refresh()
    return fresh, steady, seconds + more


def explain_time_split(settings: Settings, table: Table, proposal: Proposal) -> None:
    """The policy's cost estimate for the proposal's time granularity and the other one."""
    stats = collect_stats(table)
    work = workload_of(settings, "base", table)
    t = thresholds_from(settings)
    target = proposal.target
    current = target.time_field(stats.time_column)
    if current is None or current.transform not in ("day", "hour"):
        return
    other = LayoutField(current.source, "hour" if current.transform == "day" else "day")
    for layout in (target, target.without(current).with_field(other)):
        cost = workload_cost(work, layout, stats, day_bytes(stats), t.cost_model)
        print(
            f"  estimated workload cost, {layout.describe_partition():22s}: {cost.files:7.0f}"
            f" files opened, {cost.bytes / 2**20:7.1f} MiB read, {cost.cost / 2**20:7.1f} MiB"
        )


def print_table(title: str, results: dict[str, dict], queries: list[Query]) -> dict[str, float]:
    states = list(results)
    print(f"\n{title}: best-of-N ms (files read/files in table)")
    print(f"{'query':38s}" + "".join(f"{s:>22s}" for s in states))
    for q in queries:
        cells = "".join(
            f"{ms:>10.1f} ({read:>4d}/{total:<4d})"
            for ms, read, total in (results[s][q.name] for s in states)
        )
        print(f"{q.name:38s}{cells}")
    totals = {s: sum(v[0] for v in results[s].values()) for s in states}
    print(f"{'workload total':38s}" + "".join(f"{totals[s]:>22.1f}" for s in states))
    return totals


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--appends", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=400, help="spans per append")
    parser.add_argument("--hours", type=int, default=48)
    parser.add_argument("--live", type=int, default=30, help="uncompacted commits, steady state")
    parser.add_argument("--repeat", type=int, default=7)
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
        base, base_live, seconds = build(settings, "base", batches, args.live, None)
        print(
            f"wrote {args.appends * args.rows:,} spans in {args.appends} commits in"
            f" {seconds:.1f}s ({args.appends / seconds:.1f} commits/s)"
        )
        engine = DuckDBEngine(settings)
        engine_ms: dict[str, dict] = {}
        pruned_ms: dict[str, dict] = {}
        querylog = JsonLinesQueryLog(settings.data_path / "querylog")
        for q in queries:
            windows = engine.query("base", q.sql).time_windows  # logged as queryd logs them
            for _ in range(q.weight):
                querylog.record(
                    QueryRecord("base", q.sql, True, 10.0, tables=["spans"], time_windows=windows)
                )
        proposal = propose_layout(settings, "base", base)
        print(f"\npolicy: {proposal.current}\n     -> {proposal.target}")
        for change in proposal.changes:
            print(f"  - {change.describe()}\n    evidence {json.dumps(dict(change.evidence))}")
        explain_time_split(settings, base, proposal)

        adapted, adapted_live, _ = build(settings, "adapted", batches, args.live, proposal)
        # Default and adapted take turns query by query (see best_ms).
        for state, tenants in (
            ("fresh", ("base", "adapted")),
            ("live", ("baselive", "adaptedlive")),
        ):
            runs = dict(zip(("default", "adapted"), tenants, strict=True))
            for name, result in run_engine(engine, runs, queries, args.repeat).items():
                engine_ms[f"{name} {state}"] = result
        for state, pair in (("fresh", (base, adapted)), ("live", (base_live, adapted_live))):
            tables = dict(zip(("default", "adapted"), pair, strict=True))
            for name, result in run_pruned(tables, queries, args.repeat).items():
                pruned_ms[f"{name} {state}"] = result
        options = CompactionOptions.from_settings(settings)
        for name, table in (("default", base), ("adapted", adapted)):
            done = compact_table(table, options)
            print(
                f"compacted {name}: {done.files_before} -> {done.files_after} files"
                f" in {done.seconds:.1f}s ({done.commits} commits)"
            )
            table.refresh()
        compacted = {"default": base, "adapted": adapted}
        for name, result in run_pruned(compacted, queries, args.repeat).items():
            pruned_ms[f"{name} compacted"] = result
        runs = {"default": "base", "adapted": "adapted"}
        for name, result in run_engine(engine, runs, queries, args.repeat).items():
            engine_ms[f"{name} compacted"] = result
        engine.close()

    totals = print_table("queryd DuckDBEngine", engine_ms, queries)
    pruned = print_table("DuckDB over Iceberg-planned files (plan cached)", pruned_ms, queries)
    print(f"\n{'ratio of workload totals':44s}{'engine':>10s}{'pruned':>10s}")
    for label, a, b in (
        ("default: fresh / compacted", "default fresh", "default compacted"),
        ("default: live / compacted", "default live", "default compacted"),
        ("adapted: fresh / compacted", "adapted fresh", "adapted compacted"),
        ("adapted: live / compacted", "adapted live", "adapted compacted"),
        ("fresh: default / adapted", "default fresh", "adapted fresh"),
        ("live: default / adapted", "default live", "adapted live"),
        ("compacted: default / adapted", "default compacted", "adapted compacted"),
    ):
        print(f"  {label:42s}{totals[a] / totals[b]:>9.2f}x{pruned[a] / pruned[b]:>9.2f}x")
    print("\nper query, compacted default / adapted (engine, pruned):")
    for q in queries:
        e = engine_ms["default compacted"][q.name][0] / engine_ms["adapted compacted"][q.name][0]
        p = pruned_ms["default compacted"][q.name][0] / pruned_ms["adapted compacted"][q.name][0]
        print(f"  {q.name:42s}{e:>9.2f}x{p:>9.2f}x")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
