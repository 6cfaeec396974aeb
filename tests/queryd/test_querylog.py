"""The query log: columns a query filters and groups on, and JSON-lines files per tenant."""

from __future__ import annotations

import json
import time
from pathlib import Path

from emberlake.settings import LakeSettings, Settings
from lake.layout import read_query_log
from queryd.guard import check_query
from queryd.querylog import JsonLinesQueryLog, QueryRecord, query_columns, sample_stride


def columns(sql: str) -> tuple[list[str], list[str]]:
    return query_columns(check_query(sql).tree)


def test_filters_and_group_by_with_positions_and_aliases() -> None:
    assert columns(
        "SELECT service_name AS svc, count(*) FROM spans WHERE start_time > now() - INTERVAL 1 HOUR"
        " AND status_code = 'ERROR' GROUP BY svc"
    ) == (["start_time", "status_code"], ["service_name"])
    assert columns("SELECT name, kind, count(*) FROM spans GROUP BY 1, 2") == (
        [],
        ["name", "kind"],
    )


def test_map_lookups_are_recorded_with_their_key() -> None:
    filters, groups = columns(
        "SELECT attributes['http.route'], count(*) FROM spans s"
        " WHERE s.resource_attributes['deployment.environment'] = 'prod'"
        " AND element_at(attributes, 'peer') IS NOT NULL GROUP BY 1"
    )
    assert filters == ["resource_attributes['deployment.environment']", "attributes['peer']"]
    assert groups == ["attributes['http.route']"]


def test_subqueries_and_ctes_contribute_their_own_filters() -> None:
    filters, _ = columns(
        "WITH slow AS (SELECT * FROM spans WHERE duration_ms > 500)"
        " SELECT * FROM slow WHERE trace_id IN"
        " (SELECT trace_id FROM logs WHERE severity_text = 'ERROR')"
    )
    assert set(filters) == {"duration_ms", "trace_id", "severity_text"}


def test_records_append_per_tenant_and_day_and_read_back(tmp_path: Path) -> None:
    log = JsonLinesQueryLog(tmp_path / "querylog")
    first = QueryRecord(
        tenant="acme",
        sql="SELECT 1",
        ok=True,
        elapsed_ms=1.5,
        rows=1,
        tables=["spans"],
        filter_columns=["start_time"],
        at=1_795_000_000.0,
    )
    log.record(first)
    log.record(
        QueryRecord(tenant="acme", sql="SELEC", ok=False, elapsed_ms=0.1, error="invalid_sql")
    )
    log.record(QueryRecord(tenant="other", sql="SELECT 2", ok=True, elapsed_ms=1.0))
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.jsonl"))
    assert files[0] == "querylog/acme/2026-11-18.jsonl"
    assert any(f.startswith("querylog/other/") for f in files)
    line = json.loads((tmp_path / files[0]).read_text().splitlines()[0])
    assert line["timestamp"] == "2026-11-18T11:06:40.000+00:00"
    assert line["at"] == 1_795_000_000.0 and line["filter_columns"] == ["start_time"]
    entries = list(log.entries("acme"))
    assert entries[0] == first
    assert [e.error for e in entries] == [None, "invalid_sql"]
    assert [e.sql for e in log.entries("other")] == ["SELECT 2"]


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.jsonl"))


def test_prune_deletes_day_files_that_ended_before_the_look_back(tmp_path: Path) -> None:
    now = 1_795_000_000.0  # 2026-11-18T11:06:40Z
    unbounded = JsonLinesQueryLog(tmp_path)
    for tenant, days_ago in [("acme", 3), ("acme", 2), ("acme", 1), ("acme", 0), ("idle", 2)]:
        unbounded.record(QueryRecord(tenant, "SELECT 1", True, 1.0, at=now - days_ago * 86400))
    (tmp_path / "acme" / "notes.jsonl").write_text("kept\n")
    log = JsonLinesQueryLog(tmp_path, keep_seconds=86400)
    removed = log.prune(now=now)
    # The cut-off is 2026-11-17T11:06:40: the 17th still holds records after it, the 16th ended.
    assert sorted(p.relative_to(tmp_path).as_posix() for p in removed) == [
        "acme/2026-11-15.jsonl",
        "acme/2026-11-16.jsonl",
        "idle/2026-11-16.jsonl",
    ]
    assert _files(tmp_path) == [
        "acme/2026-11-17.jsonl",
        "acme/2026-11-18.jsonl",
        "acme/notes.jsonl",
    ]
    assert JsonLinesQueryLog(tmp_path).prune(now=now) == [], "unbounded logs are never pruned"


def test_writing_prunes_once_a_day_and_the_layout_reader_sees_recent_queries(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=str(tmp_path), lake=LakeSettings(layout_querylog_seconds=86400))
    root = settings.data_path / "querylog"
    now = time.time()
    unbounded = JsonLinesQueryLog(root)
    for tenant in ("acme", "idle"):
        unbounded.record(QueryRecord(tenant, "SELECT old", True, 1.0, at=now - 4 * 86400))
    log = JsonLinesQueryLog.from_settings(settings)
    log.record(QueryRecord("acme", "SELECT recent", True, 1.0, at=now - 3600))
    log.record(QueryRecord("acme", "SELECT now", True, 1.0, at=now))
    assert not any(f.startswith("idle/") for f in _files(root))
    assert [r.sql for r in log.entries("acme")] == ["SELECT recent", "SELECT now"]
    since = now - settings.lake.layout_querylog_seconds
    assert [r.sql for r in read_query_log(settings, "acme", since)] == [
        "SELECT recent",
        "SELECT now",
    ]
    # Later the same day, writing does not scan the folder again.
    unbounded.record(QueryRecord("idle", "SELECT old", True, 1.0, at=now - 4 * 86400))
    log.record(QueryRecord("acme", "SELECT again", True, 1.0, at=now))
    assert any(f.startswith("idle/") for f in _files(root))
    assert len(log.prune()) == 1


def test_sample_stride_doubles_past_the_day_cap_and_stops_at_twice_it() -> None:
    cap = 8000
    assert [sample_stride(size, cap) for size in (0, 7999)] == [1, 1]
    assert [sample_stride(cap + k * 1000, cap) for k in range(8)] == [2, 4, 8, 16, 32, 64, 128, 256]
    assert sample_stride(2 * cap, cap) == 0


def test_a_busy_day_is_sampled_with_weights_and_stays_bounded(tmp_path: Path) -> None:
    cap = 20_000
    log = JsonLinesQueryLog(tmp_path, day_bytes=cap)
    at = 1_800_000_000.0
    sent = 3000
    for i in range(sent):
        sql = "SELECT * FROM spans WHERE trace_id = 'x'" if i % 3 else "SELECT 1 FROM logs"
        log.record(QueryRecord("acme", sql, True, 1.0, tables=["spans"], at=at))
    (day_file,) = (tmp_path / "acme").glob("*.jsonl")
    kept = list(log.entries("acme"))
    size = day_file.stat().st_size
    assert cap < size < 2 * cap  # sampled past the cap, never past twice it
    assert len(kept) < sent and max(r.weight for r in kept) > 1
    full = [r for r in kept if r.weight == 1]
    assert sum(len(r.to_json()) + 1 for r in full) >= cap  # every query logged up to the cap
    # The weights account for every query but those waiting for their sampled line.
    total = sum(r.weight for r in kept)
    assert sent - max(r.weight for r in kept) < total <= sent
