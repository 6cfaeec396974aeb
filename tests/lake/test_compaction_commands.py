"""`emberlake compact`, `tables`, `partitioning` and the periodic LakeMaintainer (integration)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from emberlake.cli import cli
from emberlake.settings import LakeSettings, Settings, to_env
from lake.catalog import open_catalog
from lake.layout import layout_changes, layout_of
from lake.maintainer import LakeMaintainer
from queryd.querylog import JsonLinesQueryLog, QueryRecord
from tests.lake.spantables import SERVICES, SpanAppender, create_spans, seqs_in, span_batch

pytestmark = pytest.mark.integration


def lake_settings(tmp_path: Path, **lake: object) -> Settings:
    return Settings(
        data_dir=str(tmp_path / "data"),
        lake=LakeSettings(
            compact_small_file_bytes=1 << 20,
            compact_target_file_bytes=1 << 23,
            compact_min_files=4,
            layout_day_split_bytes=1 << 40,
            layout_min_queries=10,
            layout_min_partition_bytes=1,
            layout_max_trace_buckets=4,
            # Tiny tables: file opens at (almost) no cost, so the workload's filters decide.
            layout_file_open_bytes=1,
            orphan_min_age_seconds=0.0,
            snapshot_retain_seconds=0.0,
            snapshots_keep_min=1,
            **lake,  # type: ignore[arg-type]
        ),
    )


def fill(settings: Settings, batches: int = 12) -> None:
    create_spans(open_catalog(settings))
    appender = SpanAppender(open_catalog(settings), expire_every=0)
    for i in range(batches):
        appender.append(span_batch(range(i * 20, i * 20 + 20), SERVICES[i % 5]))


def log_trace_lookups(settings: Settings, n: int) -> None:
    querylog = JsonLinesQueryLog(settings.data_path / "querylog")
    for i in range(n):
        sql = f"SELECT * FROM spans WHERE trace_id = '{i:032x}'"
        querylog.record(QueryRecord("acme", sql, ok=True, elapsed_ms=30.0, tables=["spans"]))


def run(settings: Settings, *args: str) -> str:
    env = to_env(settings)
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_cli_compacts_lists_and_adapts(tmp_path: Path) -> None:
    settings = lake_settings(tmp_path)
    fill(settings)

    listed = json.loads(run(settings, "tables", "--json"))
    (spans,) = [t for t in listed if t["table"] == "acme.spans"]
    assert (spans["rows"], spans["files"]) == (240, 12)
    assert spans["partition"] == "day(start_time)"
    assert spans["sort"] == "service_name, start_time"
    assert "acme.spans" in run(settings, "tables", "--tenant", "acme")

    text = run(settings, "compact", "--tenant", "acme", "--table", "spans")
    assert "acme.spans: 12 files -> 1" in text
    (result,) = json.loads(run(settings, "compact", "--tenant", "acme", "--json"))
    assert (result["files_before"], result["files_after"], result["commits"]) == (1, 1, 0)

    proposed = json.loads(run(settings, "partitioning", "propose", "--tenant", "acme", "--json"))
    assert proposed[0]["changes"] == []
    log_trace_lookups(settings, 12)
    text = run(settings, "partitioning", "propose", "--tenant", "acme", "--table", "spans")
    assert "bucket[4](trace_id)" in text and "12 of 12 queries" in text
    applied = json.loads(run(settings, "partitioning", "apply", "--tenant", "acme", "--json"))
    assert [c["after"] for c in applied[0]["applied"]] == ["bucket[4](trace_id)", "trace_id"]
    shown = json.loads(run(settings, "partitioning", "show", "--tenant", "acme", "--json"))
    assert shown[0]["partition"] == "day(start_time), bucket[4](trace_id)"
    assert shown[0]["sort"] == "trace_id"
    assert len(shown[0]["changes"]) == 2
    text = run(settings, "partitioning", "log", "--tenant", "acme")
    assert "2 layout change(s)" in text and "because 12 of 12 queries" in text

    unknown = CliRunner().invoke(cli, ["tables", "--tenant", "nobody"], env=to_env(settings))
    assert unknown.exit_code != 0 and "no table" in unknown.output


def test_maintainer_cycle_adapts_compacts_expires_and_cleans(tmp_path: Path) -> None:
    settings = lake_settings(tmp_path, layout_interval_seconds=1.0, compact_interval_seconds=1.0)
    fill(settings)
    log_trace_lookups(settings, 12)
    maintainer = LakeMaintainer(settings)
    (report,) = [r for r in maintainer.run_once(tenant="acme") if r.table == "acme.spans"]
    assert report.error is None
    assert [c["after"] for c in report.applied] == ["bucket[4](trace_id)", "trace_id"]
    # Compaction in the same cycle moved the small old-spec files into the new spec.
    assert report.compaction is not None and report.compaction.files_after < 12
    assert report.expired_snapshots > 0
    assert report.orphans is not None
    # The twelve small files, no longer referenced by any snapshot, are gone.
    assert len([p for p in report.orphans.deleted if p.endswith(".parquet")]) == 12
    table = open_catalog(settings).load_table(("acme", "spans"))
    assert {t.file.spec_id for t in table.scan().plan_files()} == {table.spec().spec_id}
    assert sorted(seqs_in(table)) == list(range(240))
    assert len(layout_changes(table)) == 2
    # Nothing new: the next cycle changes nothing.
    (again,) = [
        r for r in maintainer.run_once(tenant="acme", adapt=True) if r.table == "acme.spans"
    ]
    assert again.applied == [] and again.compaction is not None and again.compaction.commits == 0

    # The periodic loop runs in a thread until stopped.
    thread, stop = maintainer.start()
    cycles = maintainer.cycles
    deadline = threading.Event()
    for _ in range(100):
        if maintainer.cycles > cycles:
            break
        deadline.wait(0.05)
    stop.set()
    thread.join(timeout=30)
    assert not thread.is_alive() and maintainer.cycles > cycles
    assert layout_of(table).describe_sort() == "trace_id"


def test_compact_loop_runs_until_terminated(tmp_path: Path) -> None:
    settings = lake_settings(tmp_path, compact_interval_seconds=1.0)
    fill(settings)
    env = {**os.environ, **to_env(settings)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "emberlake.cli", "compact", "--loop"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    table = open_catalog(settings).load_table(("acme", "spans"))
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            table.refresh()
            if len(list(table.scan().plan_files())) == 1:
                break
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output.decode()
    assert len(list(table.scan().plan_files())) == 1
    assert sorted(seqs_in(table)) == list(range(240))
