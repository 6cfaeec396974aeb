"""The broker dies and comes back while the receiver takes traffic.

With the embedded broker (memory-backed Tansu) a restart is a new, empty cluster: records it had
acknowledged but the lake writer had not yet committed are gone with it. This test holds the
embedded broker to what it can promise: while it is down clients get retryable errors (gRPC
UNAVAILABLE, HTTP 503 with Retry-After), the receiver recovers by itself (same process), and
everything acknowledged after the restart reaches the lake exactly once, with nothing duplicated
overall. A durable broker (Apache Kafka with replication) would add the missing promise: records
acknowledged before the outage survive it too.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from pathlib import Path

import grpc
import pytest

from emberlake.broker import EmbeddedBroker
from emberlake.loadgen import AckedSpanSender
from emberlake.local import free_port
from emberlake.settings import Settings
from ingest.kafka import ensure_emberlake_topics
from ingest.otlp_receiver.signals import TRACES
from tests.faults.harness import (
    Component,
    assert_exactly_once,
    lake_uid_counts,
    process_alive,
    wait_until,
)
from tests.ingest.harness import grpc_export, http_request
from tests.ingest.otlp_receiver.otlp_data import spans_request

pytestmark = pytest.mark.integration


def test_broker_restart_under_traffic(settings: Settings, tmp_path: Path) -> None:
    port = free_port()
    broker = EmbeddedBroker(port, tmp_path / "broker.log")
    broker.start()
    settings = settings.replace(
        kafka=dataclasses.replace(
            settings.kafka,
            bootstrap_servers=broker.bootstrap_servers,
            delivery_timeout_ms=3000,
            session_timeout_ms=3000,
        )
    )
    ensure_emberlake_topics(settings)
    receiver = Component(settings, ["receiver"], tmp_path / "receiver.log").start()
    writer = Component(settings, ["writer", "--drain-seconds", "5"], tmp_path / "writer.log")
    writer.start()
    receiver.wait_port(settings.receiver.http_port)
    run = uuid.uuid4().hex[:8]
    sender = AckedSpanSender(
        f"127.0.0.1:{settings.receiver.grpc_port}", run, batch=20, interval=0.05, timeout=30
    ).start()
    outage: list[tuple[int, dict[str, str]]] = []
    grpc_codes: list[grpc.StatusCode] = []
    try:
        wait_until(lambda: sender.log.acked_count() >= 200, 60, "acknowledgements")
        wait_until(lambda: "assigned [(" in writer.log(100_000), 60, "the writer's partitions")
        broker.stop()
        down_at = time.monotonic()
        # While the broker is away: retryable answers on both protocols, never a silent OK.
        body = spans_request().SerializeToString()
        reply = http_request(
            f"http://127.0.0.1:{settings.receiver.http_port}/v1/traces",
            body,
            {"Content-Type": "application/x-protobuf"},
        )
        outage.append((reply.status, reply.headers))
        grpc_codes.append(
            grpc_export(f"127.0.0.1:{settings.receiver.grpc_port}", TRACES, body).code
        )
        acked_before_restart = sender.log.acked()
        broker = EmbeddedBroker(port, tmp_path / "broker-2.log")
        broker.start()
        up_at = time.monotonic()
        wait_until(
            lambda: any(b.acked and b.started > up_at for b in sender.log.batches),
            60,
            "acknowledgements from the restarted broker",
        )
        acked_count = sender.log.acked_count()
        wait_until(lambda: sender.log.acked_count() >= acked_count + 200, 60, "steady traffic")
        # The writer must not resume the new cluster from the old one's offsets: it commits
        # what it read, stops and says why; its supervisor starts it again.
        wait_until(lambda: not writer.alive(), 60, "the writer to notice the new cluster")
        writer_exit = writer.stop()
        assert "is now cluster" in writer.log(100_000), writer.log()
        writer = Component(settings, ["writer", "--drain-seconds", "5"], tmp_path / "writer.log")
        writer.start()
    finally:
        sender.stop()
    assert outage[0][0] == 503, outage
    assert "Retry-After" in outage[0][1]
    assert grpc_codes == [grpc.StatusCode.UNAVAILABLE]
    assert process_alive(receiver.pid), "the receiver must recover by itself"
    # Requests whose acknowledgement came after the restart are in the new broker.
    after = {u for b in sender.log.batches if b.acked and b.ended > up_at for u in b.uids}
    in_flight = sender.log.in_flight_at([down_at])
    try:
        wait_until(
            lambda: set(lake_uid_counts(settings, ["default.spans"])) >= after,
            90,
            "spans acknowledged after the restart in the lake",
            0.5,
        )
    finally:
        writer_code = writer.stop()
        receiver_code = receiver.stop()
        broker.stop()
    counts = lake_uid_counts(settings, ["default.spans"])
    assert_exactly_once(counts, after, allowed_duplicates=in_flight)
    lost = acked_before_restart - set(counts)
    print(
        f"acked before the broker died: {len(acked_before_restart)}, of them lost with the "
        f"memory-backed broker: {len(lost)}; acked after restart: {len(after)}, all stored; "
        f"in flight at the crash: {len(in_flight)}"
    )
    assert writer_exit != 0
    assert writer_code == 0, writer.log()
    assert receiver_code == 0, receiver.log()
