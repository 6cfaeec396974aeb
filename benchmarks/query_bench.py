"""Query latency: the DuckDB engine over an Iceberg table, against pyiceberg's own reader.

Writes ``--rows`` spans into a fresh SQLite-catalog table in ``--files`` appends, then times
(median of ``--repeat`` runs): a GROUP BY over every row, a one-hour time window, a point lookup,
the fixed cost of a trivial query, and the GROUP BY through HTTP. The baseline, measured in the
same run, is pyiceberg's ``scan().to_arrow()`` followed by the same GROUP BY in DuckDB.

Then the fixed cost of small queries on a table with realistic metadata: ``--meta-appends``
commits of the lake's own spans schema through the lake writer, snapshots expired down to tens
kept, one file per commit. Small queries run with queryd's caches of loaded tables and checked
statements off (``queryd.table_cache_entries = 0``, ``statement_cache_entries = 0``: every query
loads the table metadata and parses its SQL) and on, the two engines taking turns query by query,
``--fixed-repeat`` times each with a pause between queries (an agent thinks between them, and the
spare databases are opened meanwhile): fastest wall time, and median CPU of the querying thread.
Plain DuckDB over the same files, in a new database and on a ready view, gives the floor.

    python -m benchmarks.query_bench [--rows 1000000] [--files 10] [--repeat 5]
        [--meta-appends 300] [--fixed-repeat 40]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import functools
import itertools
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
from pyiceberg.schema import Schema
from pyiceberg.types import DoubleType, MapType, NestedField, StringType, TimestamptzType

from benchmarks import layout_bench
from emberlake.local import free_port
from emberlake.settings import QuerydSettings, Settings
from lake.catalog import open_catalog
from lake.maintenance import SnapshotExpiry
from lake.offsets import offset_property
from lake.writer import IcebergWriter, TableAppend
from queryd.client import QueryClient
from queryd.engine import DuckDBEngine, view_sql
from queryd.server import QuerydThread

SCHEMA = Schema(
    NestedField(1, "start_time", TimestamptzType(), required=False),
    NestedField(2, "duration_ms", DoubleType(), required=False),
    NestedField(3, "trace_id", StringType(), required=False),
    NestedField(4, "service_name", StringType(), required=False),
    NestedField(5, "status_code", StringType(), required=False),
    NestedField(
        6, "attributes", MapType(7, StringType(), 8, StringType(), value_required=False), False
    ),
)
T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
#: Hours of event time the realistic table's commits cover.
REALISTIC_HOURS = 48
GROUP_BY = (
    "SELECT service_name, count(*) AS n, avg(duration_ms) AS mean_ms,"
    " sum(CASE WHEN status_code = 'ERROR' THEN 1 ELSE 0 END) AS errors"
    " FROM spans GROUP BY 1 ORDER BY 1"
)


def batch(rows: int, offset: int, rng: np.random.Generator) -> pa.Table:
    seconds = np.arange(offset, offset + rows)  # one span a second
    micros = (int(T0.timestamp()) + seconds) * 1_000_000
    services = np.array([f"svc-{i}" for i in range(20)])
    return pa.table(
        {
            "start_time": pa.array(micros, pa.timestamp("us", "UTC")),
            "duration_ms": pa.array(rng.gamma(2.0, 20.0, rows)),
            "trace_id": pa.array([f"{i:032x}" for i in seconds]),
            "service_name": pa.array(services[rng.integers(0, 20, rows)]),
            "status_code": pa.array(np.where(rng.random(rows) < 0.02, "ERROR", "OK")),
            "attributes": pa.array(
                [[("http.route", f"/r{i % 50}")] for i in seconds],
                pa.map_(pa.string(), pa.string()),
            ),
        }
    )


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm: first plan, OS page cache
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000.0)
    return statistics.median(times)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--meta-appends", type=int, default=300)
    parser.add_argument("--fixed-repeat", type=int, default=40)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=str(Path(tmp) / "data"), queryd=QuerydSettings(port=free_port())
        )
        catalog = open_catalog(settings)
        catalog.create_namespace("bench")
        table = catalog.create_table(("bench", "spans"), SCHEMA)
        rng = np.random.default_rng(7)
        per_file = args.rows // args.files
        started = time.perf_counter()
        for i in range(args.files):
            table.append(batch(per_file, i * per_file, rng))
        rows = per_file * args.files
        print(f"wrote {rows:,} rows in {args.files} files in {time.perf_counter() - started:.1f}s")

        engine = DuckDBEngine(settings)
        hour = T0 + dt.timedelta(seconds=rows // 2)
        window = (
            "SELECT attributes['http.route'] AS route, count(*) FROM spans"
            f" WHERE start_time >= TIMESTAMPTZ '{hour.isoformat()}'"
            f" AND start_time < TIMESTAMPTZ '{(hour + dt.timedelta(hours=1)).isoformat()}'"
            " GROUP BY 1"
        )
        lookup = f"SELECT * FROM spans WHERE trace_id = '{rows // 3:032x}'"
        figures = {
            "engine GROUP BY (all rows)": median_ms(
                lambda: engine.query("bench", GROUP_BY), args.repeat
            ),
            "engine 1-hour window GROUP BY": median_ms(
                lambda: engine.query("bench", window), args.repeat
            ),
            "engine trace_id lookup": median_ms(lambda: engine.query("bench", lookup), args.repeat),
            "engine SELECT 1 (fixed cost)": median_ms(
                lambda: engine.query("bench", "SELECT 1"), args.repeat
            ),
        }
        read, total = engine.query("bench", window).files["spans"]
        print(f"1-hour window reads {read} of {total} files (manifest bounds)")
        with QuerydThread(settings) as server:
            client = QueryClient(server.url, tenant="bench")
            figures["HTTP GROUP BY (all rows)"] = median_ms(
                lambda: client.query(GROUP_BY), args.repeat
            )

        def baseline() -> object:
            arrow = catalog.load_table(("bench", "spans")).scan().to_arrow()
            con = duckdb.connect()
            con.register("spans", arrow)
            return con.execute(GROUP_BY).fetchall()

        base = median_ms(baseline, max(1, args.repeat // 2))
        print(f"baseline pyiceberg scan().to_arrow() + GROUP BY: {base:8.1f} ms")
        for name, ms in figures.items():
            print(f"{name:40s} {ms:8.1f} ms   ({base / ms:5.1f}x faster than baseline)")
        if args.meta_appends > 0:
            fixed_cost(settings, args.meta_appends, args.fixed_repeat)


def write_realistic(settings: Settings, tenant: str, appends: int) -> str:
    """The lake's spans table with ``appends`` commits through the lake writer, snapshots expired
    every 20 commits down to the newest 40; returns what it holds."""
    writer = IcebergWriter(open_catalog(settings), SnapshotExpiry(20, 0.0, 40))
    key = offset_property("bench", "bench.otlp.spans", 0)
    rng = np.random.default_rng(3)
    offset: int | None = None
    for i in range(appends):
        rows = layout_bench.spans(i, 50, appends, REALISTIC_HOURS, rng)
        nxt = (offset or 0) + rows.num_rows
        writer.append(TableAppend(tenant, "spans", rows, {key: nxt}, {key: offset}))
        offset = nxt
    table = open_catalog(settings).load_table((tenant, "spans"))
    files = len(table.scan().plan_files())
    return (
        f"{appends} commits, {len(table.metadata.snapshots)} snapshots kept, {files} files,"
        f" {len(table.schema().fields)} columns"
    )


def taking_turns(
    fns: dict[str, Callable[[], object]], repeat: int, pause: float = 0.03
) -> dict[str, tuple[float, float]]:
    """Per function: (fastest wall ms, median CPU ms of this thread), the functions taking turns
    call by call so that all see the same disturbance from other processes."""
    for fn in fns.values():
        fn()
        fn()
    wall: dict[str, list[float]] = {name: [] for name in fns}
    cpu: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            time.sleep(pause)
            started, thread = time.perf_counter(), time.thread_time()
            fn()
            cpu[name].append((time.thread_time() - thread) * 1000.0)
            wall[name].append((time.perf_counter() - started) * 1000.0)
    return {name: (min(wall[name]), statistics.median(cpu[name])) for name in fns}


def with_caches(settings: Settings, on: bool, port: int) -> Settings:
    """The settings with queryd's table and statement caches at their defaults, or off."""
    defaults = QuerydSettings()
    entries = (defaults.table_cache_entries, defaults.statement_cache_entries) if on else (0, 0)
    queryd = dataclasses.replace(
        settings.queryd,
        port=port,
        table_cache_entries=entries[0],
        statement_cache_entries=entries[1],
    )
    return dataclasses.replace(settings, queryd=queryd)


def fixed_cost(settings: Settings, appends: int, repeat: int) -> None:
    """Small queries on a realistic table, queryd's caches off and on, in this process."""
    tenant = "meta"
    print(f"\nrealistic table: {write_realistic(settings, tenant, appends)}")
    since = layout_bench.T0 + dt.timedelta(hours=REALISTIC_HOURS, minutes=-15)

    def window_since(start: dt.datetime) -> str:
        return (
            "SELECT service_name, count(*) AS n, avg(duration_ms) AS mean_ms FROM spans"
            f" WHERE start_time >= TIMESTAMPTZ '{start.isoformat()}' GROUP BY 1 ORDER BY 1"
        )

    window = window_since(since)
    counter = itertools.count(1)

    def fresh_window() -> str:  # a new SQL text and time bound each time: no cache hit
        return window_since(since + dt.timedelta(microseconds=next(counter)))

    modes = {
        "off": with_caches(settings, False, free_port()),
        "on": with_caches(settings, True, free_port()),
    }
    engines = {mode: DuckDBEngine(s) for mode, s in modes.items()}
    rows: dict[str, dict[str, tuple[float, float]]] = {}
    try:
        read, total = engines["on"].query(tenant, window).files["spans"]
        cases: dict[str, Callable[[DuckDBEngine], object]] = {
            "engine SELECT 1": lambda e: e.query(tenant, "SELECT 1"),
            f"engine 15-min window ({read} of {total} files)": lambda e: e.query(tenant, window),
            "  same, new SQL text each time": lambda e: e.query(tenant, fresh_window()),
        }
        for name, case in cases.items():
            rows[name] = taking_turns(
                {mode: functools.partial(case, e) for mode, e in engines.items()}, repeat
            )
        alone = duckdb_alone(engines["on"], tenant, window, repeat)
    finally:
        for engine in engines.values():
            engine.close()
    servers = {mode: QuerydThread(s).start() for mode, s in modes.items()}
    try:
        clients = {m: QueryClient(s.url, tenant=tenant) for m, s in servers.items()}
        for name, sql in (("HTTP SELECT 1", "SELECT 1"), ("HTTP 15-min window", window)):
            rows[name] = taking_turns(
                {m: functools.partial(c.query, sql) for m, c in clients.items()}, repeat
            )
    finally:
        for server in servers.values():
            server.stop()
    print(f"fixed cost, caches off vs on (fastest of {repeat}; CPU: median of the querying thread)")
    for name, figures in rows.items():
        (off_ms, off_cpu), (on_ms, on_cpu) = figures["off"], figures["on"]
        # Through HTTP the query runs in the daemon's threads: this thread's CPU says nothing.
        cpu = (
            ("", "") if name.startswith("HTTP") else (f" cpu {off_cpu:5.1f}", f" cpu {on_cpu:5.1f}")
        )
        print(
            f"{name:40s} off {off_ms:6.1f} ms{cpu[0]:10s}   on {on_ms:6.1f} ms{cpu[1]:10s}"
            f"   {off_ms / on_ms:4.2f}x"
        )
    print(
        f"DuckDB alone on the window's files: {alone['fresh'][0]:.1f} ms in a new database"
        f" (cpu {alone['fresh'][1]:.1f}), {alone['ready'][0]:.1f} ms on a ready view"
        f" (cpu {alone['ready'][1]:.1f})"
    )


def duckdb_alone(
    engine: DuckDBEngine, tenant: str, sql: str, repeat: int
) -> dict[str, tuple[float, float]]:
    """The same query in plain DuckDB over the files the engine plans for it: in a new database
    with its view (the floor for a database per query), and on a view made once."""
    checked = engine.check(tenant, sql)
    scan = engine.prune(engine.planner.scan(tenant, "spans"), checked, 30.0)
    ready = duckdb.connect(config={"threads": engine.settings.queryd.threads})
    ready.execute("SET TimeZone = 'UTC'")
    ready.execute(view_sql(scan))

    def fresh() -> object:
        con = duckdb.connect(config={"threads": engine.settings.queryd.threads})
        try:
            con.execute(view_sql(scan))
            return con.execute(sql).fetchall()
        finally:
            con.close()

    try:
        return taking_turns(
            {"fresh": fresh, "ready": lambda: ready.execute(sql).fetchall()}, repeat
        )
    finally:
        ready.close()


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
