"""SIGKILL of every emberlake process under steady load, restarted by ``emberlake up``'s supervisor:
every acknowledged span ends in the lake exactly once.

Clients send through the OpenTelemetry SDK's OTLP/gRPC exporter, which retries UNAVAILABLE and
connection failures. A request the receiver handed to Kafka but died before acknowledging is
sent again by the client; the lake writer recognises the copy by its request id (see
:mod:`lake.dedupe`), so even the spans in flight when the receiver died are stored once.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from emberlake.loadgen import AckedSpanSender
from emberlake.local import LocalSystem
from tests.faults.harness import (
    assert_exactly_once,
    process_alive,
    supervised_pid,
    uid_counts_sql,
    wait_until,
)

pytestmark = pytest.mark.integration

COMPONENTS = ("writer", "queryd", "receiver", "detectors", "agents")


def _detector_offsets(data: Path) -> int:
    """Sum of the detectors' stored next offsets: grows as they fold records."""
    path = data / "detectors" / "state.db"
    if not path.exists():
        return 0
    with sqlite3.connect(path) as con:
        row = con.execute("SELECT coalesce(sum(next_offset), 0) FROM offsets").fetchone()
    return int(row[0])


def test_sigkill_each_process_under_load(tmp_path: Path) -> None:
    data = tmp_path / "data"
    system = LocalSystem(
        data,
        only=COMPONENTS,
        extra_env={
            "EMBERLAKE_KAFKA_SESSION_TIMEOUT_MS": "3000",
            "EMBERLAKE_AGENTS_WORKER_POLL_SECONDS": "0.5",
        },
    )
    system.start()
    run = uuid.uuid4().hex[:8]
    sender = AckedSpanSender(f"127.0.0.1:{system.grpc_port}", run, batch=20, interval=0.02)
    receiver_deaths: list[float] = []
    try:
        sender.start()
        wait_until(lambda: sender.log.acked_count() >= 400, 60, "first acknowledgements")
        for name in ("receiver", "writer", "detectors", "agents"):
            pid = supervised_pid(system.log_path, name)
            assert pid is not None and process_alive(pid), f"{name} is not running\n{system.logs()}"
            before = sender.log.acked_count()
            detected = _detector_offsets(data)
            if name == "receiver":
                receiver_deaths.append(time.monotonic())
            os.kill(pid, signal.SIGKILL)
            new = wait_until(
                lambda name=name, pid=pid: (
                    (supervised_pid(system.log_path, name) or pid) != pid
                    and supervised_pid(system.log_path, name)
                ),
                60,
                f"the supervisor to restart {name}",
            )
            # Traffic keeps being acknowledged after the restart.
            wait_until(
                lambda before=before: sender.log.acked_count() >= before + 300,
                60,
                f"acknowledgements after killing {name}",
            )
            if name == "detectors":
                wait_until(
                    lambda detected=detected: _detector_offsets(data) > detected,
                    60,
                    "the restarted detectors to fold new records",
                )
            assert process_alive(new), f"restarted {name} died\n{system.logs()}"
    finally:
        sender.stop()
        if receiver_deaths:
            receiver_deaths.append(time.monotonic())  # not a death: keeps the list non-empty
    sent, acked = sender.log.sent(), sender.log.acked()
    in_flight = sender.log.in_flight_at(receiver_deaths[:1])
    try:
        wait_until(
            lambda: {u for u, _ in system.query(uid_counts_sql(run))["rows"]} >= acked,
            90,
            "every acknowledged span in the lake",
            0.5,
        )
        counts = Counter(dict(system.query(uid_counts_sql(run))["rows"]))
    finally:
        code = system.stop()
    assert_exactly_once(counts, acked)
    assert set(counts) <= sent
    assert code == 0, system.logs()
    lost_unacked = len(sent - acked - set(counts))
    assert len(acked) > 0.9 * len(sent), f"{len(sent - acked)} of {len(sent)} not acknowledged"
    print(
        f"sent {len(sent)} acked {len(acked)} stored {len(counts)}"
        f" in flight when the receiver died {len(in_flight)}"
        f" unacked-and-lost {lost_unacked}"
    )
