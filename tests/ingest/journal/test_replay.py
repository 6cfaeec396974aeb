"""Replaying a journal into a real broker, against a real Iceberg catalog's marks."""

from __future__ import annotations

import time
from pathlib import Path
from typing import cast

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from emberlake.settings import Settings
from ingest.journal import JournalStore, JournalWriter, journal_dir, replay_journal
from ingest.journal.segment import FRAME, JournalEntry, SegmentHeader
from ingest.kafka import cluster_id, consumer_config, ensure_emberlake_topics
from ingest.topics import HEADER_TENANT, Topics
from lake.catalog import open_catalog
from lake.offsets import CheckpointStore, offset_property
from lake.tables import ensure_table
from tests.lake.otlp_records import spans_request

pytestmark = pytest.mark.integration

OLD = "gone-cluster-1"


def entry(topic: str, partition: int, offset: int) -> JournalEntry:
    return JournalEntry(
        topic,
        partition,
        offset,
        f"acme/svc{partition}".encode(),
        f"{topic}/{partition}/{offset}".encode(),
        ((HEADER_TENANT, b"acme"), ("emberlake-request-id", f"r{offset}".encode())),
    )


def read_topic(settings: Settings, topic: str, expected: int) -> list[tuple[int, bytes, list]]:
    """(partition, value, [key, headers]) of the records in ``topic``, in order per partition."""
    consumer = Consumer(consumer_config(settings, f"{settings.kafka.topic_prefix}-check"))
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(4)])
    out: list[tuple[int, bytes, list]] = []
    deadline = time.monotonic() + 30
    while len(out) < expected and time.monotonic() < deadline:
        for msg in consumer.consume(100, 0.2):
            if msg.error() is None:
                part, value = cast(int, msg.partition()), cast(bytes, msg.value())
                out.append((part, value, [msg.key(), msg.headers()]))
    consumer.close()
    return out


def test_replay_produces_what_the_lake_lacks_in_order(settings: Settings) -> None:
    ensure_emberlake_topics(settings)
    topics = Topics(settings.kafka.topic_prefix)
    spans, logs = topics.signal("spans"), topics.signal("logs")
    store = JournalStore(journal_dir(settings))
    writer = JournalWriter(store)
    writer.set_cluster(OLD)
    # Acknowledgements of concurrent requests arrive out of offset order.
    writer.append([entry(spans, 0, o) for o in (1, 0, 3, 2, 4)])
    writer.append([entry(spans, 1, o) for o in range(5)] + [entry(logs, 2, 0)])
    writer.close()
    # A second segment, whose last write was torn by a crash.
    writer.append([entry(spans, 0, o) for o in range(5, 10)] + [entry(logs, 2, 1)])
    writer.close()
    closed = store.names()[-1]
    with (store.directory / closed).open("ab") as f:
        f.write(FRAME.pack(500, 0) + b"half an entry")
    old_names = store.names()
    # The lake holds spans/0 below 4 (checkpoint) and spans/1 below 2 (the table's offset).
    catalog = open_catalog(settings)
    CheckpointStore(catalog, OLD).save({(spans, 0): 4})
    table = ensure_table(catalog, "acme", "spans")
    with table.transaction() as tx:
        tx.set_properties({offset_property(OLD, spans, 1): "2"})

    current = cluster_id(settings)
    report = replay_journal(settings, store.directory, current)

    assert (report.replayed, report.skipped, report.segments) == (11, 6, 2)
    assert len(report.damaged) == 1 and "truncated" in report.damaged[0]
    got = read_topic(settings, spans, 9)
    by_partition = {p: [v for q, v, _ in got if q == p] for p in (0, 1)}
    assert by_partition == {
        0: [f"{spans}/0/{o}".encode() for o in range(4, 10)],
        1: [f"{spans}/1/{o}".encode() for o in range(2, 5)],
    }
    key, headers = got[0][2]
    assert key in (b"acme/svc0", b"acme/svc1")
    assert headers[0] == (HEADER_TENANT, b"acme") and headers[1][0] == "emberlake-request-id"
    assert [(p, v) for p, v, _ in read_topic(settings, logs, 2)] == [
        (2, f"{logs}/2/0".encode()),
        (2, f"{logs}/2/1".encode()),
    ]
    # The replayed records are journalled under the new cluster; the old segments are gone.
    [name] = store.names()
    assert name not in old_names
    segment = store.read(name)
    assert segment.header is not None
    assert (segment.header.cluster, segment.header.supersedes) == (current, tuple(old_names))
    assert sorted(e.offset for e in segment.entries if e.tp == (spans, 0)) == list(range(6))
    # Nothing of another cluster is left: a second replay does nothing.
    again = replay_journal(settings, store.directory, current)
    assert (again.replayed, again.segments) == (0, 0)
    assert store.names() == [name]


def test_a_replay_segment_left_beside_its_sources_wins(settings: Settings, tmp_path: Path) -> None:
    """A crash between writing the replay's segment and deleting the old ones: the next replay
    deletes the old ones instead of producing them a second time."""
    store = JournalStore(tmp_path / "journal")
    writer = JournalWriter(store)
    writer.set_cluster(OLD)
    writer.append([entry("x.otlp.spans", 0, 0)])
    writer.close()
    [old] = store.names()
    store.write_segment(
        SegmentHeader("between", 1, 1, supersedes=(old,)), [entry("x.otlp.spans", 0, 0)], "z.seg"
    )
    report = replay_journal(settings, store.directory, "between")
    assert (report.replayed, report.segments) == (0, 0)
    assert store.names() == ["z.seg"]


def test_records_set_aside_before_the_crash_are_not_set_aside_again(settings: Settings) -> None:
    """Without a checkpoint (a crash between a batch's commits and its checkpoint, or a writer
    on the new broker deleted the old ones), the dead-letter table's offset tells what the old
    writer set aside. Below it, a record the writer sets aside is skipped; one it stores is
    produced again (the batch may have committed its dead letters and not its spans)."""
    ensure_emberlake_topics(settings)
    spans = Topics(settings.kafka.topic_prefix).signal("spans")
    garbage = b"\x0a\xff\xff\xff\xff\x0f not a protobuf"
    good = spans_request("svc", [1, 2]).SerializeToString()
    headers = ((HEADER_TENANT, b"acme"),)
    store = JournalStore(journal_dir(settings))
    writer = JournalWriter(store)
    writer.set_cluster(OLD)
    values = [garbage, good, garbage, good]
    writer.append([JournalEntry(spans, 0, o, b"k", v, headers) for o, v in enumerate(values)])
    writer.close()
    # The old writer committed its dead letters up to offset 2; nothing else is marked.
    table = ensure_table(open_catalog(settings), "acme", "dead_letters")
    with table.transaction() as tx:
        tx.set_properties({offset_property(OLD, spans, 0): "2"})

    report = replay_journal(settings, store.directory, cluster_id(settings))

    assert (report.replayed, report.skipped) == (3, 1)
    assert [v for _, v, _ in read_topic(settings, spans, 3)] == [good, garbage, good]
