"""Reading the lake back in tests: rows of a table, seq counts, and waiting for them."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

from emberlake.settings import Settings
from lake.catalog import open_catalog
from lake.ingestor import LakeIngestor, build_ingestor


def table_rows(catalog: Catalog, name: str) -> pa.Table | None:
    """All rows of a table, or None while it does not exist."""
    try:
        return catalog.load_table(name).scan().to_arrow()
    except (NoSuchTableError, NoSuchNamespaceError):
        return None


def seq_counts(rows: pa.Table | None) -> Counter[int]:
    """How often each ``seq`` attribute appears in the rows."""
    if rows is None:
        return Counter()
    return Counter(int(dict(attrs)["seq"]) for attrs in rows.column("attributes").to_pylist())


def wait_for(
    check: Callable[[], bool], timeout: float, interval: float = 0.3, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def wait_for_seqs(
    settings: Settings, name: str, expected: set[int], timeout: float = 60.0
) -> Counter[int]:
    """Wait until the table holds every expected seq; returns the final counts."""
    catalog = open_catalog(settings)
    counts: Counter[int] = Counter()

    def done() -> bool:
        nonlocal counts
        counts = seq_counts(table_rows(catalog, name))
        return expected <= set(counts)

    wait_for(done, timeout, what=f"{len(expected)} seqs in {name}")
    return counts


@contextmanager
def running_ingestor(settings: Settings, pipeline: bool = True) -> Iterator[LakeIngestor]:
    """An ingestor consuming in a background thread until the block ends (graceful stop)."""
    ingestor = build_ingestor(settings, pipeline=pipeline)
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            ingestor.run(stop)
        except BaseException as exc:  # surfaced to the test below
            errors.append(exc)

    thread = threading.Thread(target=run, name="lake-ingestor", daemon=True)
    thread.start()
    try:
        yield ingestor
    finally:
        stop.set()
        thread.join(timeout=60)
    if errors:
        raise errors[0]
