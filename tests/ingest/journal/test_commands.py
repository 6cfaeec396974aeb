"""``emberlake journal status|replay`` on a real journal, broker and catalog."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from emberlake.cli import cli
from emberlake.settings import Settings, to_env
from ingest.journal import JournalStore, JournalWriter, journal_dir
from ingest.journal.segment import JournalEntry
from ingest.kafka import cluster_id, ensure_emberlake_topics
from ingest.topics import HEADER_TENANT, Topics
from lake.catalog import open_catalog
from lake.offsets import CheckpointStore

pytestmark = pytest.mark.integration

OLD = "gone-cluster-2"


def entries(topic: str, partition: int, offsets: range) -> list[JournalEntry]:
    return [
        JournalEntry(
            topic, partition, o, b"k", f"{partition}/{o}".encode(), ((HEADER_TENANT, b"acme"),)
        )
        for o in offsets
    ]


def journal(settings: Settings, *args: str) -> tuple[Any, str]:
    result = CliRunner().invoke(cli, ["journal", *args], env=to_env(settings))
    assert result.exit_code == 0, result.output
    return (json.loads(result.stdout) if "--json" in args else None), result.stdout


def test_status_counts_and_replay_empties_what_the_lake_lacks(settings: Settings) -> None:
    ensure_emberlake_topics(settings)
    topics = Topics(settings.kafka.topic_prefix)
    spans, logs = topics.signal("spans"), topics.signal("logs")
    current = cluster_id(settings)
    store = JournalStore(journal_dir(settings))
    writer = JournalWriter(store)
    writer.set_cluster(OLD)
    writer.append(entries(spans, 0, range(5)))
    writer.close()
    writer.append(entries(spans, 0, range(5, 8)) + entries(logs, 1, range(2)))
    writer.set_cluster(current)  # the broker now: in it, not replayed
    writer.append(entries(spans, 2, range(3)))
    writer.close()
    CheckpointStore(open_catalog(settings), OLD).save({(spans, 0): 3})
    size = sum((store.directory / n).stat().st_size for n in store.names())

    status, _ = journal(settings, "status", "--json")

    assert (status["segments"], status["bytes"], status["records"]) == (3, size, 13)
    assert 0 <= status["oldest_age_seconds"] < 60
    assert status["current_cluster"] == current
    by_cluster = {c["cluster"]: c for c in status["clusters"]}
    assert by_cluster[OLD] == {
        "cluster": OLD,
        "current": False,
        "segments": 2,
        "records": 10,
        "in_lake": 3,
        "lacking": 7,
    }
    assert by_cluster[current]["records"] == 3 and by_cluster[current]["current"]
    assert status["to_replay"] == 7
    _, text = journal(settings, "status")
    assert "3 segments" in text and "would produce 7 records again" in text

    report, _ = journal(settings, "replay", "--json")

    assert report == {
        "cluster": current,
        "replayed": 7,
        "skipped": 3,
        "segments": 2,
        "damaged": [],
    }
    after, _ = journal(settings, "status", "--json")
    assert after["to_replay"] == 0 and after["records"] == 10  # 3 + the 7 now in the broker
    assert [c["cluster"] for c in after["clusters"]] == [current]
