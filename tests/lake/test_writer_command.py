"""``emberlake writer`` as a process: a stop drains what the topics hold, then exits cleanly."""

from __future__ import annotations

from pathlib import Path

import pytest

from emberlake.settings import Settings
from ingest.kafka import ensure_emberlake_topics
from lake.catalog import open_catalog
from tests.lake.lakecheck import seq_counts, table_rows, wait_for
from tests.lake.otlp_records import produce, seq_batches, spans_request
from tests.lake.writerproc import WriterProcess

pytestmark = pytest.mark.integration


def test_sigterm_drains_the_topics_then_exits(settings: Settings, tmp_path: Path) -> None:
    ensure_emberlake_topics(settings)
    writer = WriterProcess(settings, tmp_path / "writer.log").start()
    wait_for(lambda: "assigned" in writer.log(), 60, what="the writer to join its group")
    records = [
        ("acme", "a", spans_request("a", s).SerializeToString()) for s in seq_batches(0, 500, 10)
    ]
    produce(settings, "spans", records)
    # Stop at once: the batch being read is committed and what the topics still hold is drained.
    assert writer.stop() == 0, writer.log()[-3000:]
    log = writer.log()
    assert "lake writer stopped after 500 rows" in log, log[-3000:]
    counts = seq_counts(table_rows(open_catalog(settings), "acme.spans"))
    assert counts == dict.fromkeys(range(500), 1)
