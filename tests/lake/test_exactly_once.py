"""Exactly-once under crashes and competition: killed writers, a crash between the tables of one
batch, two writers in one group. Real broker, real catalog, real writer processes."""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from pathlib import Path

import pytest

from emberlake.settings import Settings
from ingest.kafka import KafkaSink, ensure_emberlake_topics
from lake.catalog import open_catalog
from lake.ingestor import build_ingestor
from lake.writer import TableAppend
from tests.lake.lakecheck import seq_counts, table_rows, wait_for, wait_for_seqs
from tests.lake.otlp_records import produce, seq_batches, spans_request
from tests.lake.writerproc import WriterProcess

pytestmark = pytest.mark.integration

TENANTS = ("acme", "globex")


class Crash(BaseException):
    """Stands for the process dying: escapes every ``except Exception``."""


def _records(start: int, count: int, per_request: int) -> list[tuple[str, str, bytes]]:
    """Requests alternating between the tenants; seqs are unique across tenants."""
    out = []
    for i, seqs in enumerate(seq_batches(start, count, per_request)):
        tenant = TENANTS[i % 2]
        service = f"svc{i % 3}"
        out.append((tenant, service, spans_request(service, seqs).SerializeToString()))
    return out


def _expected(start: int, count: int, per_request: int) -> dict[str, set[int]]:
    expected: dict[str, set[int]] = {t: set() for t in TENANTS}
    for i, seqs in enumerate(seq_batches(start, count, per_request)):
        expected[TENANTS[i % 2]].update(seqs)
    return expected


def _one_partition(settings: Settings) -> Settings:
    return settings.replace(kafka=dataclasses.replace(settings.kafka, partitions=1))


def _quick(settings: Settings) -> Settings:
    """Short batches, and a short session so a killed member leaves the group soon."""
    return settings.replace(
        lake=dataclasses.replace(settings.lake, batch_max_seconds=0.3),
        kafka=dataclasses.replace(settings.kafka, session_timeout_ms=3000),
    )


def _run_until(settings: Settings, expected: dict[str, set[int]], crash_after: int = -1) -> None:
    """Run an ingestor in this process until the tables hold ``expected`` or, with
    ``crash_after`` >= 0, until it has committed that many tables and 'dies' at the next one."""
    ingestor = build_ingestor(settings)
    real_append = ingestor.writer.append
    done: list[str] = []

    def append(job: TableAppend) -> None:
        if 0 <= crash_after <= len(done):
            raise Crash(f"dying before committing {job.name}")
        real_append(job)
        done.append(job.name)

    ingestor.writer.append = append  # type: ignore[method-assign]
    stop = threading.Event()
    crashed: list[BaseException] = []

    def run() -> None:
        try:
            ingestor.run(stop)
        except Crash as exc:
            crashed.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        if crash_after >= 0:
            thread.join(timeout=60)
            assert crashed, "the ingestor should have reached the crash point"
        else:
            for tenant, seqs in expected.items():
                wait_for_seqs(settings, f"{tenant}.spans", seqs)
    finally:
        stop.set()
        thread.join(timeout=60)


def _assert_exactly_once(settings: Settings, expected: dict[str, set[int]]) -> None:
    catalog = open_catalog(settings)
    for tenant, seqs in expected.items():
        counts = seq_counts(table_rows(catalog, f"{tenant}.spans"))
        assert set(counts) == seqs, f"{tenant}: missing {sorted(seqs - set(counts))[:10]}"
        duplicated = {s: n for s, n in counts.items() if n > 1}
        assert not duplicated, f"{tenant}: duplicated {dict(list(duplicated.items())[:10])}"


def test_crash_between_the_tables_of_one_batch(settings: Settings) -> None:
    settings = _one_partition(settings)
    ensure_emberlake_topics(settings)
    produce(settings, "spans", _records(0, 200, 20))
    first = _expected(0, 200, 20)
    _run_until(settings, first)

    # A second batch with both tenants on the one partition; die after the first table commits.
    produce(settings, "spans", _records(200, 200, 20))
    _run_until(settings, {}, crash_after=1)
    catalog = open_catalog(settings)
    after_crash = {t: set(seq_counts(table_rows(catalog, f"{t}.spans"))) for t in TENANTS}
    second = _expected(200, 200, 20)
    ahead = [t for t in TENANTS if second[t] <= after_crash[t]]
    behind = [t for t in TENANTS if not second[t] & after_crash[t]]
    assert len(ahead) == 1 and len(behind) == 1, "the crash must leave one table ahead"

    # A tenant seen for the first time in the replayed range must not lose records either.
    produce(
        settings,
        "spans",
        [("initech", "x", spans_request("x", range(900, 910)).SerializeToString())],
    )
    both = {t: first[t] | second[t] for t in TENANTS}
    _run_until(settings, {**both, "initech": set(range(900, 910))})
    _assert_exactly_once(settings, {**both, "initech": set(range(900, 910))})


def _produce_steadily(settings: Settings, records: list[tuple[str, str, bytes]], seconds: float):
    sink = KafkaSink(settings)
    pause = seconds / max(1, len(records) // 10)

    def run() -> None:
        for i in range(0, len(records), 10):
            produce(settings, "spans", records[i : i + 10], sink=sink)
            time.sleep(pause)
        sink.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_killed_writer_restarts_without_loss_or_duplicates(
    settings: Settings, tmp_path: Path
) -> None:
    settings = _quick(settings)
    ensure_emberlake_topics(settings)
    records = _records(0, 4000, 10)
    producer = _produce_steadily(settings, records, seconds=24)
    logs = tmp_path / "writer.log"
    writer = WriterProcess(settings, logs).start()
    catalog = open_catalog(settings)

    def stored() -> int:
        return sum(len(seq_counts(table_rows(catalog, f"{t}.spans"))) for t in TENANTS)

    for kill in range(3):
        # Let this process commit something, then kill it while records keep arriving.
        before = stored()
        wait_for(lambda before=before: stored() > before, 60, 0.2, "the writer to commit")
        assert producer.is_alive(), f"kill {kill + 1} came after the last record was produced"
        writer.kill()
        writer = WriterProcess(settings, logs).start()
    producer.join(timeout=120)
    expected = _expected(0, 4000, 10)
    try:
        for tenant, seqs in expected.items():
            wait_for_seqs(settings, f"{tenant}.spans", seqs, timeout=120)
        wait_for(lambda: writer.log().count("INFO lake.ingestor: assigned") >= 4, 60)
    finally:
        assert writer.stop() == 0, writer.log()[-3000:]
    assert "Traceback" not in writer.log()
    _assert_exactly_once(settings, expected)


def test_two_writers_in_one_group_share_the_tables(settings: Settings, tmp_path: Path) -> None:
    settings = _quick(settings)
    ensure_emberlake_topics(settings)
    records = _records(0, 2000, 10)
    producer = _produce_steadily(settings, records, seconds=8)
    one = WriterProcess(settings, tmp_path / "one.log").start()
    two = WriterProcess(settings, tmp_path / "two.log").start()
    producer.join(timeout=120)
    expected = _expected(0, 2000, 10)
    try:
        for tenant, seqs in expected.items():
            wait_for_seqs(settings, f"{tenant}.spans", seqs, timeout=120)
    finally:
        assert one.stop() == 0, one.log()[-3000:]
        assert two.stop() == 0, two.log()[-3000:]
    _assert_exactly_once(settings, expected)
    # Both writers took part.
    for writer in (one, two):
        written = re.search(r"lake writer stopped after (\d+) rows", writer.log())
        assert written and int(written.group(1)) > 0, writer.log()[-3000:]
