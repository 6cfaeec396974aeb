"""Orphan file removal after compaction and expiry, on real files (integration)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from emberlake.settings import Settings
from lake.catalog import open_catalog
from lake.compaction import CompactionOptions, compact_table
from lake.maintenance import expire_snapshots
from lake.orphans import referenced_files, remove_orphan_files
from tests.lake.spantables import SERVICES, SpanAppender, create_spans, seqs_in, span_batch

pytestmark = pytest.mark.integration

HOUR = 3600.0


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_only_old_unreferenced_files_are_removed(tmp_path: Path) -> None:
    settings = Settings(data_dir=str(tmp_path / "data"))
    table = create_spans(open_catalog(settings))
    appender = SpanAppender(open_catalog(settings), expire_every=0)
    for i in range(8):
        appender.append(span_batch(range(i * 20, i * 20 + 20), SERVICES[i % 5]))
    table.refresh()
    small_files = [
        Path(t.file.file_path.removeprefix("file://")) for t in table.scan().plan_files()
    ]
    options = CompactionOptions(target_file_bytes=1 << 23, small_file_bytes=1 << 20, min_files=4)
    assert compact_table(table, options).commits == 1
    root = Path(table.location().removeprefix("file://"))
    everything = [p for p in root.rglob("*") if p.is_file()]
    for path in everything:
        _age(path, 2 * HOUR)
    # Still referenced by older snapshots: nothing is an orphan yet.
    assert remove_orphan_files(table, min_age_seconds=HOUR).deleted == []
    assert all(p.exists() for p in small_files)

    # Stray files: one old (a crashed writer's leftover), one fresh (a commit in flight).
    old_stray = root / "data" / "day=2026-03-01" / "00000-0-stray-old.parquet"
    fresh_stray = root / "data" / "day=2026-03-01" / "00000-0-stray-fresh.parquet"
    for stray in (old_stray, fresh_stray):
        stray.write_bytes(b"PAR1")
    _age(old_stray, 2 * HOUR)

    table.refresh()
    assert expire_snapshots(table, retain_seconds=0, keep_min=1) > 0
    table.refresh()
    assert len(table.metadata.snapshots) == 1
    live_before = referenced_files(table)

    dry = remove_orphan_files(table, min_age_seconds=HOUR, dry_run=True)
    assert all(Path(p).exists() for p in dry.deleted)
    report = remove_orphan_files(table, min_age_seconds=HOUR)
    deleted = {Path(p) for p in report.deleted}
    assert deleted == {Path(p) for p in dry.deleted}
    # The compacted-away small files and the old stray are gone; the fresh stray stays.
    assert set(small_files) <= deleted
    assert old_stray in deleted and not old_stray.exists()
    assert fresh_stray.exists() and report.young >= 1
    # Nothing the table references was touched, and the data reads in full.
    assert not deleted & {Path(p) for p in live_before}
    assert all(Path(p).exists() for p in live_before)
    assert sorted(seqs_in(table)) == list(range(160))
    # Old metadata files not in the metadata log went too; the current one stays.
    assert Path(table.metadata_location.removeprefix("file://")).exists()
    assert report.deleted_bytes > 0
