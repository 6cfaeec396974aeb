"""The journal folder and its writer on real files, and trimming against given checkpoints."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import pytest

from emberlake.errors import JournalError
from ingest.journal.policy import Checkpoints, TopicPartition
from ingest.journal.segment import JournalEntry, SegmentHeader
from ingest.journal.sink import JournalSink, JournalTrimmer, journal_health
from ingest.journal.store import JournalStore, JournalWriter, segment_name

TOPIC = "p.otlp.spans"


def entries(*offsets: int, partition: int = 0) -> list[JournalEntry]:
    return [JournalEntry(TOPIC, partition, o, b"k", b"v" * 100) for o in offsets]


class Clock:
    def __init__(self) -> None:
        self.ns = 1_000_000_000

    def __call__(self) -> int:
        return self.ns


def test_appends_land_in_one_open_segment_and_close_to_seg(tmp_path: Path) -> None:
    store = JournalStore(tmp_path / "j")
    writer = JournalWriter(store)
    with pytest.raises(JournalError):
        writer.append(entries(0))  # no cluster id yet: nothing may be journalled as unknown
    assert writer.errors == 1
    writer.set_cluster("a")
    writer.append(entries(0, 1))
    writer.append(entries(2))
    [name] = store.names()
    assert name.endswith(".open") and f"-{os.getpid()}-" in name
    # A process crash after write() returns loses nothing: the data is in the file already.
    assert [e.offset for e in store.read(name).entries] == [0, 1, 2]
    assert store.closed(own_pid=os.getpid()) == []
    writer.close()
    [closed] = store.names()
    assert closed.endswith(".seg") and store.closed() == [closed]
    assert writer.closed_summaries[closed].highest == {(TOPIC, 0): 2}


def test_segments_roll_by_size_age_and_cluster(tmp_path: Path) -> None:
    clock = Clock()
    store = JournalStore(tmp_path)
    writer = JournalWriter(store, segment_bytes=400, segment_seconds=10, clock_ns=clock)
    writer.set_cluster("a")
    writer.append(entries(0, 1, 2, 3))  # over 400 bytes: the next append opens a new segment
    clock.ns += 1
    writer.append(entries(4))
    assert len(store.names()) == 2
    clock.ns += 11 * 10**9
    writer.roll_if_due()
    assert len(store.closed(own_pid=os.getpid())) == 2
    writer.append(entries(5))
    writer.set_cluster("b")
    writer.append(entries(0))
    writer.close()
    clusters = [store.read(n).header.cluster for n in store.names()]  # type: ignore[union-attr]
    assert clusters == ["a", "a", "a", "b"]


def test_an_open_segment_of_a_dead_process_counts_as_closed(tmp_path: Path) -> None:
    store = JournalStore(tmp_path)
    dead = 2**22 + 12345  # above the default pid_max, so no such process
    (tmp_path / segment_name(1, dead, 1)).write_bytes(b"")
    (tmp_path / segment_name(2, os.getpid(), 1)).write_bytes(b"")
    assert store.closed(own_pid=os.getpid()) == [segment_name(1, dead, 1)]


def test_a_replay_segment_supersedes_the_old_ones(tmp_path: Path) -> None:
    store = JournalStore(tmp_path)
    writer = JournalWriter(store)
    writer.set_cluster("a")
    writer.append(entries(0))
    writer.close()
    [old] = store.names()
    header = SegmentHeader("b", 5, 1, supersedes=(old,))
    store.write_segment(header, entries(0), "x.seg")
    headers = {n: store.read_header(n) for n in store.names()}
    assert headers["x.seg"] == header
    assert store.drop_superseded(headers) == [old]  # type: ignore[arg-type]
    assert store.names() == ["x.seg"] and list(headers) == ["x.seg"]


class Checkpointed:
    def __init__(self) -> None:
        self.marks: dict[tuple[str, str, int], int | None] = {}
        self.fail = False

    def __call__(self, cluster: str, partitions: Iterable[TopicPartition]) -> Checkpoints:
        if self.fail:
            raise OSError("catalog unreachable")
        return {(cluster, t, p): self.marks.get((cluster, t, p)) for t, p in partitions}


def test_trimming_deletes_closed_segments_the_lake_covers(tmp_path: Path) -> None:
    store = JournalStore(tmp_path)
    writer = JournalWriter(store)
    lake = Checkpointed()
    trimmer = JournalTrimmer(writer, lake, interval=60)
    assert trimmer.trim_once() == 0  # no cluster yet
    writer.set_cluster("a")
    writer.append(entries(0, 1) + entries(0, partition=1))
    writer.close()
    writer.append(entries(2))  # the open segment is never trimmed
    # A closed segment another process left, of this cluster, not yet in the lake.
    store.write_segment(SegmentHeader("a", 1, 1), entries(9), segment_name(1, 1, 1, ".seg"))
    lake.marks = {("a", TOPIC, 0): 2}
    assert trimmer.trim_once() == 0  # partition 1 is not checkpointed yet
    lake.marks[("a", TOPIC, 1)] = 1
    assert trimmer.trim_once() == 1
    assert len(store.names()) == 2
    health = journal_health(writer, trimmer)
    assert health["segments"] == 2 and health["bytes"] == sum(
        (tmp_path / n).stat().st_size for n in store.names()
    )
    assert (health["records_written"], health["records_trimmed"]) == (4, 3)
    assert health["segments_trimmed"] == 1 and health["write_errors"] == 0
    assert health["last_trim_at"] is not None
    lake.fail = True
    with pytest.raises(OSError):
        trimmer.trim_once()  # the thread logs this and tries again later
    lake.fail = False
    lake.marks[("a", TOPIC, 0)] = 10
    assert trimmer.trim_once() == 1
    assert store.names() == [writer.current]


class Producer:
    """Stands in for the KafkaSink: its generation, and how often it was renewed."""

    def __init__(self) -> None:
        self.generation = 0
        self.renewed = 0

    def renew(self) -> None:
        self.renewed += 1


def test_a_new_cluster_under_a_running_receiver_renews_a_producer_of_the_old_one(
    tmp_path: Path,
) -> None:
    writer = JournalWriter(JournalStore(tmp_path))
    broker = {"cluster": "a"}
    kafka = Producer()
    sink = JournalSink(kafka, writer, lambda: broker["cluster"])  # type: ignore[arg-type]
    sink.refresh_cluster()
    trimmer = JournalTrimmer(
        writer, Checkpointed(), 60, lambda: broker["cluster"], sink.new_cluster
    )
    trimmer.check_cluster()
    assert (writer.cluster, kafka.renewed) == ("a", 0)
    broker["cluster"] = "b"  # restarted: the producer delivered for "a" may hang on "b"
    trimmer.check_cluster()
    assert (writer.cluster, kafka.renewed) == ("b", 1)
    # Replaced already (after a fatal error) since it last delivered: left alone.
    broker["cluster"] = "c"
    kafka.generation += 1
    trimmer.check_cluster()
    assert (writer.cluster, kafka.renewed) == ("c", 1)
