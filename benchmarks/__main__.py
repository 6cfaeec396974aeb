"""Run every benchmark in turn: ``python -m benchmarks [name ...]``."""

from __future__ import annotations

import importlib
import sys
import time

ALL = (
    "receiver_bench",
    "lake_bench",
    "freshness_bench",
    "query_bench",
    "schema_inference_bench",
    "layout_bench",
    "soak_bench",
)


def main(argv: list[str]) -> int:
    names = argv or list(ALL)
    for name in names:
        try:
            module = importlib.import_module(f"benchmarks.{name}")
        except ModuleNotFoundError as exc:
            print(f"== {name}: not available ({exc})")
            continue
        print(f"== {name}", flush=True)
        started = time.perf_counter()
        module.main([])
        print(f"== {name} done in {time.perf_counter() - started:.1f}s\n", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
