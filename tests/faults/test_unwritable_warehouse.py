"""The warehouse stops taking files (a dead disk, a folder replaced by a file): the writer keeps
what Kafka holds, commits nothing half-way, says why, and catches up once the warehouse is back.

Tests run as root here, so a read-only folder would still be writable; instead the tenant's
warehouse folder is swapped for a regular file, which makes every file creation under it fail
the way a broken mount does.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

from emberlake.settings import Settings
from ingest.kafka import ensure_emberlake_topics
from lake.catalog import open_catalog
from lake.offsets import CHECKPOINT_PREFIX
from lake.tables import SYSTEM_NAMESPACE
from tests.faults.harness import Component, wait_until
from tests.lake.lakecheck import seq_counts, table_rows, wait_for_seqs
from tests.lake.otlp_records import produce, seq_batches, spans_request

pytestmark = pytest.mark.integration


def _records(start: int, count: int) -> list[tuple[str, str, bytes]]:
    return [
        ("acme", f"svc{i % 3}", spans_request(f"svc{i % 3}", seqs).SerializeToString())
        for i, seqs in enumerate(seq_batches(start, count, 20))
    ]


def _checkpoints(settings: Settings) -> dict[str, str]:
    properties = open_catalog(settings).load_namespace_properties(SYSTEM_NAMESPACE)
    return {k: v for k, v in properties.items() if k.startswith(CHECKPOINT_PREFIX)}


def test_writer_holds_back_while_the_warehouse_is_unwritable(
    settings: Settings, tmp_path: Path
) -> None:
    settings = settings.replace(
        lake=dataclasses.replace(settings.lake, batch_max_seconds=0.3),
        kafka=dataclasses.replace(settings.kafka, session_timeout_ms=3000),
    )
    ensure_emberlake_topics(settings)
    writer = Component(settings, ["writer", "--drain-seconds", "5"], tmp_path / "writer.log")
    writer.start()
    try:
        produce(settings, "spans", _records(0, 400))
        wait_for_seqs(settings, "acme.spans", set(range(400)))
        checkpoints = _checkpoints(settings)
        assert checkpoints

        folder = Path(urlparse(settings.warehouse).path) / "acme"
        parked = folder.with_name("acme.parked")
        folder.rename(parked)
        folder.write_text("not a folder")
        produce(settings, "spans", _records(400, 400))
        wait_until(
            lambda: writer.log(100_000).count("batch dropped") >= 2,
            60,
            "the writer to report failed commits",
        )
        time.sleep(1.0)
        assert writer.alive() or writer.proc.returncode != 0  # type: ignore[union-attr]
        # Nothing moved: no checkpoint advanced past what the lake holds.
        assert _checkpoints(settings) == checkpoints
        log = writer.log(100_000)
        assert "Not a directory" in log or "NotADirectory" in log, log[-3000:]

        folder.unlink()
        parked.rename(folder)
        if not writer.alive():
            writer = Component(settings, ["writer"], tmp_path / "writer-2.log").start()
        produce(settings, "spans", _records(800, 200))
        counts = wait_for_seqs(settings, "acme.spans", set(range(1000)), timeout=90)
    finally:
        code = writer.stop()
    assert code == 0, writer.log()
    counts = seq_counts(table_rows(open_catalog(settings), "acme.spans"))
    assert set(counts) == set(range(1000))
    assert max(counts.values()) == 1, {s: n for s, n in counts.items() if n > 1}
    assert shutil.disk_usage(folder).free > 0
