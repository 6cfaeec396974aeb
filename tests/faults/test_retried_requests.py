"""A request the broker holds twice (the receiver died after producing it, before the client
heard so, and the client sent it again) is stored once; equal data of another tenant is not
mistaken for it."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest

from emberlake.settings import Settings
from ingest.kafka import KafkaSink, ensure_emberlake_topics
from ingest.otlp_receiver.export import decode_export, kafka_records
from ingest.otlp_receiver.signals import TRACES
from ingest.topics import Topics
from tests.faults.harness import Component
from tests.lake.lakecheck import seq_counts, table_rows, wait_for_seqs
from tests.lake.otlp_records import spans_request

pytestmark = pytest.mark.integration


def test_a_request_sent_twice_is_stored_once(settings: Settings, tmp_path: Path) -> None:
    settings = settings.replace(lake=dataclasses.replace(settings.lake, batch_max_seconds=0.3))
    ensure_emberlake_topics(settings)
    topics = Topics(settings.kafka.topic_prefix)

    def records(tenant: str, seqs: range) -> list[tuple[str, bytes, bytes, object]]:
        decoded = decode_export(TRACES, spans_request("svc", seqs).SerializeToString())
        return kafka_records(decoded, tenant, topics, time.time_ns() // 1000)  # type: ignore[return-value]

    first, other, same_for_beta = (
        records("acme", range(20)),
        records("acme", range(20, 40)),
        records("beta", range(20)),
    )
    # The retry is produced later, with other records in between, as a client's resend is.
    sink = KafkaSink(settings)
    for topic, key, value, headers in [
        *first,
        *other,
        *same_for_beta,
        *records("acme", range(20)),
    ]:
        sink.send(topic, key, value, headers).result(timeout=30)  # type: ignore[arg-type]
    sink.close()
    writer = Component(
        settings, ["writer", "--drain-seconds", "5"], tmp_path / "writer.log"
    ).start()
    try:
        wait_for_seqs(settings, "acme.spans", set(range(40)))
        wait_for_seqs(settings, "beta.spans", set(range(20)))
        # A record after the retry lands too: the partition moved on past it.
        sink = KafkaSink(settings)
        for topic, key, value, headers in records("acme", range(40, 50)):
            sink.send(topic, key, value, headers).result(timeout=30)  # type: ignore[arg-type]
        sink.close()
        wait_for_seqs(settings, "acme.spans", set(range(50)))
    finally:
        assert writer.stop() == 0, writer.log()
    from lake.catalog import open_catalog

    catalog = open_catalog(settings)
    for tenant, expected in (("acme", 50), ("beta", 20)):
        counts = seq_counts(table_rows(catalog, f"{tenant}.spans"))
        assert len(counts) == expected and max(counts.values()) == 1, (tenant, counts)
