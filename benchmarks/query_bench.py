"""Query latency: the DuckDB engine over an Iceberg table, against pyiceberg's own reader.

Writes ``--rows`` spans into a fresh SQLite-catalog table in ``--files`` appends, then times
(median of ``--repeat`` runs): a GROUP BY over every row, a one-hour time window, a point lookup,
the fixed cost of a trivial query, and the GROUP BY through HTTP. The baseline, measured in the
same run, is pyiceberg's ``scan().to_arrow()`` followed by the same GROUP BY in DuckDB.

    python -m benchmarks.query_bench [--rows 1000000] [--files 10] [--repeat 5]
"""

from __future__ import annotations

import argparse
import datetime as dt
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

from emberlake.local import free_port
from emberlake.settings import QuerydSettings, Settings
from lake.catalog import open_catalog
from queryd.client import QueryClient
from queryd.engine import DuckDBEngine
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


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
