"""SIGKILL of the embedded (memory-backed) broker under steady load, with and without the
receiver's ack journal; under `emberlake up`, and with the parts run as separate processes.

``emberlake up`` runs broker, receiver, lake writer and query daemon; clients send spans with
unique ids through the OpenTelemetry SDK's exporter. The broker is killed mid-stream with
acknowledged spans the writer has not committed yet (its batches close every 2 s); the
supervisor restarts it and every component. With the journal, the supervisor produces what the
lake lacks into the new broker before the writer starts: every acknowledged span is stored
exactly once. Without it, those spans are gone, which is what the journal is for. Run apart,
`emberlake broker` replays when it starts again, and `emberlake journal replay` does by hand.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from emberlake.broker import EmbeddedBroker, port_is_free
from emberlake.cli import cli
from emberlake.errors import QueryError
from emberlake.loadgen import AckedSpanSender
from emberlake.local import LocalSystem, descendants, free_port
from emberlake.sendlog import SendLog
from emberlake.settings import Settings, to_env
from tests.faults.harness import (
    Component,
    assert_exactly_once,
    lake_uid_counts,
    process_alive,
    supervised_pid,
    uid_counts_sql,
    wait_until,
)
from tests.ingest.harness import http_request

pytestmark = pytest.mark.integration


def _lake_counts(system: LocalSystem, run: str) -> Counter[str]:
    try:
        rows = system.query(uid_counts_sql(run))["rows"]
    except QueryError:  # no spans table yet
        return Counter()
    return Counter(dict(rows))


def _journal_segments(data: Path) -> list[str]:
    folder = data / "receiver" / "journal"
    return sorted(p.name for p in folder.glob("*")) if folder.is_dir() else []


def _crash_broker_under_load(system: LocalSystem, run: str) -> tuple[SendLog, float]:
    """Send, SIGKILL the broker once spans are being acknowledged, let the supervisor restart
    it, send on for a while; returns the sender's log and when the broker died."""
    sender = AckedSpanSender(
        f"127.0.0.1:{system.grpc_port}", run, batch=20, interval=0.02, timeout=60
    )
    sender.start()
    try:
        # Some spans in the lake already (those are skipped by the replay), more on the way.
        wait_until(lambda: len(_lake_counts(system, run)) >= 100, 60, "the first spans stored")
        wait_until(lambda: sender.log.acked_count() >= 600, 60, "more acknowledgements")
        pid = supervised_pid(system.log_path, "broker")
        assert pid is not None and process_alive(pid), system.logs()
        # Hold the writer while the broker acknowledges more, so the crash always finds
        # acknowledged spans the lake has not read yet (otherwise it depends on timing).
        writer = supervised_pid(system.log_path, "writer")
        assert writer is not None and process_alive(writer), system.logs()
        os.kill(writer, signal.SIGSTOP)
        try:
            held = sender.log.acked_count()
            wait_until(lambda: sender.log.acked_count() >= held + 200, 60, "unread spans")
            os.kill(pid, signal.SIGKILL)
            killed_at = time.monotonic()
        finally:
            os.kill(writer, signal.SIGCONT)
        wait_until(
            lambda: (supervised_pid(system.log_path, "broker") or pid) != pid,
            60,
            "the supervisor to start a new broker",
        )
        wait_until(
            lambda: any(b.acked and b.started > killed_at + 1 for b in sender.log.batches),
            60,
            "acknowledgements through the new broker",
        )
        after = sender.log.acked_count()
        wait_until(lambda: sender.log.acked_count() >= after + 200, 60, "steady traffic")
    finally:
        sender.stop()
    return sender.log, killed_at


@pytest.mark.parametrize("journal", ["auto", "off"])
def test_embedded_broker_crash_loses_no_acknowledged_span(tmp_path: Path, journal: str) -> None:
    data = tmp_path / "data"
    system = LocalSystem(
        data,
        only=("writer", "queryd", "receiver"),
        extra_env={
            "EMBERLAKE_KAFKA_SESSION_TIMEOUT_MS": "3000",
            # Requests caught by the crash fail fast, so the receiver stops quickly.
            "EMBERLAKE_KAFKA_DELIVERY_TIMEOUT_MS": "3000",
            # Acknowledged spans wait up to 2 s in the broker before the lake has them.
            "EMBERLAKE_LAKE_BATCH_MAX_SECONDS": "2",
            "EMBERLAKE_RECEIVER_JOURNAL": journal,
            "EMBERLAKE_RECEIVER_JOURNAL_SEGMENT_SECONDS": "0.5",
            "EMBERLAKE_RECEIVER_JOURNAL_TRIM_SECONDS": "0.5",
        },
    )
    system.start()
    run = uuid.uuid4().hex[:8]
    try:
        log, killed_at = _crash_broker_under_load(system, run)
        acked = log.acked()
        before = {u for b in log.batches if b.acked and b.ended < killed_at for u in b.uids}
        after = {u for b in log.batches if b.acked and b.started > killed_at for u in b.uids}
        # The spans acknowledged after the restart reach the lake either way.
        wait_until(lambda: set(_lake_counts(system, run)) >= after, 60, "the spans sent after it")
        if journal == "off":
            counts = _lake_counts(system, run)
            lost = before - set(counts)
            assert lost, "nothing acknowledged was lost: the crash came when nothing was pending"
            print(f"journal off: {len(lost)} of {len(before)} spans acked before the crash lost")
            return
        counts = wait_until(
            lambda: (c := _lake_counts(system, run)) and set(c) >= acked and c,
            60,
            "every acknowledged span in the lake",
        )
        assert_exactly_once(counts, acked)
        up_log = system.log_path.read_text()
        assert "journal replay into cluster" in up_log, system.logs()
        replay = up_log.split("journal replay into cluster")[1].splitlines()[0]
        print(
            f"journal on: {len(acked)} spans acknowledged ({len(before)} before the crash), "
            f"none lost or duplicated; replay{replay}"
        )
        # Trimming keeps up once the lake has everything: only the newest segments remain.
        wait_until(lambda: len(_journal_segments(data)) <= 3, 30, "the journal to be trimmed")
    finally:
        assert system.stop() == 0, system.logs()


# -- the parts run separately: `emberlake broker`, `receiver`, `writer` on one data folder ----


def _kill_broker(broker: Component, port: int) -> float:
    """SIGKILL the broker process `emberlake broker` runs, and `emberlake broker` itself;
    returns when."""
    for pid in descendants(broker.pid):
        os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()
    broker.kill()
    wait_until(lambda: port_is_free("127.0.0.1", port), 30, "the broker's port to be free")
    return killed_at


def _writer_restarted(writer: Component, settings: Settings, log: Path) -> Component:
    """The writer exits once it finds a new cluster; start it again, as its service manager
    would."""
    wait_until(lambda: not writer.alive(), 60, "the writer to notice the new cluster")
    assert "is now cluster" in writer.log(100_000), writer.log()
    return Component(settings, ["writer", "--drain-seconds", "5"], log).start()


def _journal_health(settings: Settings, trimmed: bool) -> dict | None:
    """The receiver's /healthz, once its journal counters show a trim (if asked)."""
    url = f"http://127.0.0.1:{settings.receiver.http_port}/healthz"
    health = json.loads(http_request(url, method="GET").body)
    if trimmed and health["journal"]["records_trimmed"] == 0:
        return None
    return health


def _cli_json(settings: Settings, *args: str) -> dict:
    result = CliRunner().invoke(cli, [*args, "--json"], env=to_env(settings))
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_separate_parts_keep_acknowledged_spans_across_broker_crashes(
    settings: Settings, tmp_path: Path
) -> None:
    """First crash: `emberlake broker`, started again, replays by itself. Second crash: a broker
    started by other means, then `emberlake journal status` and `emberlake journal replay` by
    hand once the old writer has stopped. Every acknowledged span is stored once, except those
    of requests in flight at a crash (part of one may be stored before the client resends it)."""
    port = free_port()
    settings = settings.replace(
        kafka=dataclasses.replace(
            settings.kafka,
            bootstrap_servers="",
            embedded_port=port,
            delivery_timeout_ms=3000,
            session_timeout_ms=3000,
        ),
        receiver=dataclasses.replace(
            settings.receiver, journal_segment_seconds=0.5, journal_trim_seconds=0.5
        ),
        # Acknowledged spans wait up to 2 s in the broker before the lake has them.
        lake=dataclasses.replace(settings.lake, batch_max_seconds=2.0),
    )
    logs = tmp_path / "logs"
    broker = Component(settings, ["broker", "--replay-after", "0"], logs / "broker-1.log")
    broker.start().wait_port(port)
    receiver = Component(settings, ["receiver"], logs / "receiver.log").start()
    writer = Component(settings, ["writer", "--drain-seconds", "5"], logs / "writer.log").start()
    receiver.wait_port(settings.receiver.http_port)
    run = uuid.uuid4().hex[:8]
    sender = AckedSpanSender(
        f"127.0.0.1:{settings.receiver.grpc_port}", run, batch=20, interval=0.05, timeout=60
    ).start()
    crashes: list[float] = []
    other: EmbeddedBroker | None = None

    def stored() -> Counter[str]:
        return lake_uid_counts(settings, ["default.spans"])

    def acked_after(moment: float, more: int) -> None:
        wait_until(
            lambda: (
                sum(len(b.uids) for b in sender.log.batches if b.acked and b.started > moment)
                >= more
            ),
            60,
            f"{more} spans acknowledged through the new broker",
        )

    try:
        wait_until(lambda: len(stored()) >= 100, 60, "the first spans stored", 1.0)
        wait_until(lambda: sender.log.acked_count() >= 600, 60, "more acknowledgements")
        health = wait_until(lambda: _journal_health(settings, trimmed=True), 30, "a trim")
        assert health["status"] == "ok" and health["kafka_records"]["traces"] > 0
        journal = health["journal"]
        assert journal["records_written"] >= 30 and journal["segments"] >= 1, journal
        assert journal["bytes"] > 0 and journal["write_errors"] == 0, journal
        assert journal["last_trim_at"] > time.time() - 60, journal

        # 1. `emberlake broker` crashes and is started again: it replays by itself.
        crashes.append(_kill_broker(broker, port))
        acked_before = sender.log.acked()
        broker = Component(
            settings, ["broker", "--replay-after", "3"], logs / "broker-2.log"
        ).start()
        broker.wait_port(port)
        writer = _writer_restarted(writer, settings, logs / "writer-2.log")
        wait_until(lambda: "journal replay into cluster" in broker.log(), 60, "the replay")
        replayed_by_broker = int(
            re.findall(r"replay into cluster \S+: (\d+) records", broker.log())[0]
        )
        wait_until(lambda: set(stored()) >= acked_before, 60, "what was acked before", 1.0)
        acked_after(crashes[-1] + 1, 200)

        # 2. It crashes again, and a broker that does not replay takes its place.
        crashes.append(_kill_broker(broker, port))
        other = EmbeddedBroker(port, logs / "broker-3.log")
        other.start()
        acked_after(crashes[-1] + 1, 200)
        wait_until(lambda: not writer.alive(), 60, "the writer to notice the new cluster")
        status = _cli_json(settings, "journal", "status")
        assert status["current_cluster"] == other.cluster_id, status
        old = [c for c in status["clusters"] if not c["current"]]
        assert status["to_replay"] == sum(c["lacking"] for c in old) > 0, status
        report = _cli_json(settings, "journal", "replay")
        assert report["replayed"] == status["to_replay"], (report, status)
        assert report["cluster"] == other.cluster_id
        writer = _writer_restarted(writer, settings, logs / "writer-3.log")
        acked_after(crashes[-1] + 1, 400)
    finally:
        sender.stop()
    acked = sender.log.acked()
    try:
        counts = wait_until(
            lambda: (c := stored()) and set(c) >= acked and c,
            90,
            "every acknowledged span in the lake",
            0.5,
        )
    finally:
        writer_code = writer.stop()
        receiver_code = receiver.stop()
        if other is not None:
            other.stop()
    in_flight = sender.log.in_flight_at(crashes)
    assert_exactly_once(counts, acked, allowed_duplicates=in_flight)
    print(
        f"{len(acked)} spans acknowledged across two broker crashes, none lost; "
        f"{replayed_by_broker} records replayed by `emberlake broker`, {report['replayed']} by "
        f"`emberlake journal replay`; duplicates among the {len(in_flight)} in flight: "
        f"{sum(1 for u in in_flight if counts.get(u, 0) > 1)}"
    )
    assert writer_code == 0, writer.log()
    assert receiver_code == 0, receiver.log()
