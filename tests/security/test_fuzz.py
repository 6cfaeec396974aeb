"""Seeded fuzzing of the OTLP endpoints of a running receiver, with the lake writer behind it.

Mutations of valid requests (protobuf over gRPC and HTTP, OTLP/JSON over HTTP) must each get a
proper OTLP answer: an export response, or a google.rpc.Status with a refusal code. Whatever the
receiver accepts flows on to the writer, which must store it or set it aside as a dead letter
with a reason, never stall: records produced after the fuzzing land. The receiver never dies.
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
from collections import Counter
from pathlib import Path

import grpc
import pytest
from google.rpc import status_pb2

from emberlake.settings import Settings
from ingest.kafka import ensure_emberlake_topics
from ingest.otlp_receiver.signals import OTLP_SIGNALS
from lake.catalog import open_catalog
from tests.faults.harness import Component, rss_mb, wait_until
from tests.ingest.harness import http_request
from tests.lake.lakecheck import seq_counts, table_rows, wait_for_seqs
from tests.lake.otlp_records import produce, spans_request
from tests.security import hostile

pytestmark = pytest.mark.integration

CASES = 2000
SEED = 20261122
SIGNALS = {s.name: s for s in OTLP_SIGNALS}
#: What a refused request may be told: malformed, too large, or (never expected here) retry.
REFUSALS = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED}
HTTP_REFUSALS = {400, 413}


def _json_corpus() -> list[tuple[str, bytes]]:
    from ingest.otlp_receiver.otlp_json import request_to_json

    out = []
    for name, raw in hostile.corpus():
        message = SIGNALS[name].request_type.FromString(raw)
        out.append((name, request_to_json(message)))
    return out


def test_fuzzed_requests_get_proper_answers(settings: Settings, tmp_path: Path) -> None:
    settings = settings.replace(
        receiver=dataclasses.replace(settings.receiver, max_request_bytes=1024 * 1024),
        lake=dataclasses.replace(settings.lake, batch_max_seconds=0.3),
    )
    ensure_emberlake_topics(settings)
    receiver = Component(settings, ["receiver"], tmp_path / "receiver.log").start()
    writer = Component(settings, ["writer", "--drain-seconds", "5"], tmp_path / "writer.log")
    writer.start()
    receiver.wait_port(settings.receiver.http_port)
    rng = random.Random(SEED)
    protobuf = hostile.corpus()
    as_json = _json_corpus()
    base = f"http://127.0.0.1:{settings.receiver.http_port}"
    outcomes: Counter[str] = Counter()
    improper: list[str] = []
    rss_before = rss_mb(receiver.pid)
    started = time.monotonic()
    channel = grpc.insecure_channel(f"127.0.0.1:{settings.receiver.grpc_port}")
    methods = {
        s.name: channel.unary_unary(
            f"/{s.grpc_service}/Export",
            request_serializer=None,
            response_deserializer=s.response_type.FromString,
        )
        for s in OTLP_SIGNALS
    }
    try:
        for case in range(CASES):
            kind = case % 3
            if kind == 2:
                name, seed_body = rng.choice(as_json)
                body = hostile.mutate_json(seed_body, rng)
            else:
                name, seed_body = rng.choice(protobuf)
                body = hostile.mutate(seed_body, rng)
            signal = SIGNALS[name]
            if kind == 0:
                try:
                    methods[name](body, timeout=30)
                    outcomes["grpc OK"] += 1
                except grpc.RpcError as exc:
                    code = exc.code()  # type: ignore[attr-defined]
                    outcomes[f"grpc {code.name}"] += 1
                    if code not in REFUSALS or not exc.details():  # type: ignore[attr-defined]
                        improper.append(f"case {case}: gRPC {code} {exc.details()!r}")  # type: ignore[attr-defined]
                continue
            content_type = "application/json" if kind == 2 else "application/x-protobuf"
            reply = http_request(
                base + signal.http_path, body, {"Content-Type": content_type}, timeout=30
            )
            outcomes[f"http {reply.status}"] += 1
            try:
                if reply.status == 200:
                    if kind == 1:
                        signal.response_type.FromString(reply.body)
                    else:
                        json.loads(reply.body)
                elif reply.status in HTTP_REFUSALS:
                    if kind == 1:
                        status = status_pb2.Status.FromString(reply.body)
                    else:
                        status = status_pb2.Status(**json.loads(reply.body))
                    assert status.message and status.code in (3, 8), status
                else:
                    raise AssertionError(f"status {reply.status}")
            except Exception as exc:  # noqa: BLE001 - collected and reported below
                improper.append(f"case {case}: HTTP {reply.status} {reply.body[:200]!r}: {exc}")
    finally:
        channel.close()
    elapsed = time.monotonic() - started
    assert receiver.alive(), receiver.log()
    assert not improper, improper[:10]
    assert elapsed < 90, f"{CASES} cases took {elapsed:.0f}s"
    assert rss_mb(receiver.pid) - rss_before < 300
    # Both paths were exercised: some mutations were refused, some still parse and are accepted.
    assert outcomes["http 200"] + outcomes["grpc OK"] > 0, outcomes
    assert outcomes["http 400"] + outcomes["grpc INVALID_ARGUMENT"] > 0, outcomes

    # Records the writer cannot read at all (a foreign producer's garbage, an invalid tenant)
    # are set aside with a reason; good records after them still land.
    produce(settings, "spans", [("default", "svc", b"\x0a\xff\x01garbage")])
    produce(
        settings, "spans", [("Bad Tenant!", "svc", spans_request("x", [1]).SerializeToString())]
    )
    produce(
        settings,
        "spans",
        [("fuzzgood", "svc", spans_request("svc", range(50)).SerializeToString())],
    )
    for signal_name in ("logs", "metrics"):
        produce(settings, signal_name, [("default", "svc", b"\xff\xff\xff")])
    try:
        wait_for_seqs(settings, "fuzzgood.spans", set(range(50)), timeout=90)
        catalog = open_catalog(settings)

        def letters() -> list[dict[str, object]]:
            rows = table_rows(catalog, "default.dead_letters")
            return [] if rows is None else rows.to_pylist()

        def signal_letters() -> list[dict[str, object]] | None:
            # Each signal's records are set aside by its own consumer, in its own commit: wait
            # for all three rather than for a count other letters could make up.
            rows = [r for r in letters() if r["topic"] and not r["topic"].endswith("anomalies")]
            signals = {str(r["topic"]).rsplit(".", 1)[-1] for r in rows}
            return rows if signals >= {"spans", "logs", "metrics"} else None

        dead = wait_until(signal_letters, 60, "dead letters for each signal's undecodable record")
        system = wait_until(
            lambda: table_rows(catalog, "emberlake.dead_letters"), 60, "the invalid tenant's letter"
        )
    finally:
        writer_code = writer.stop()
        receiver_code = receiver.stop()
    assert writer_code == 0, writer.log()
    assert receiver_code == 0, receiver.log()
    assert all(r["reason"] for r in dead), dead
    invalid = [r for r in system.to_pylist() if r["tenant"] == "Bad Tenant!"]
    assert invalid and invalid[0]["reason"] == "invalid tenant", system.to_pylist()
    assert max(seq_counts(table_rows(catalog, "fuzzgood.spans")).values()) == 1
    print(f"{CASES} cases in {elapsed:.1f}s: {dict(outcomes)}")
