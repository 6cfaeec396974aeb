"""Offsets of broker clusters that are gone leave the tables, unless the ack journal needs them."""

from __future__ import annotations

import os
import time

import pytest

from emberlake.settings import Settings
from ingest.journal import JournalStore, SegmentHeader, journal_dir
from ingest.journal.store import CLOSED_SUFFIX, segment_name
from ingest.kafka import ensure_emberlake_topics
from lake.catalog import open_catalog
from lake.offsets import OFFSET_PREFIX, offset_cluster, offset_property, retired_offsets
from lake.tables import ensure_table
from tests.lake.lakecheck import running_ingestor, wait_for_seqs
from tests.lake.otlp_records import produce, spans_request


def test_offset_properties_name_their_cluster() -> None:
    assert offset_cluster(offset_property("emberlake-1f2e", "p.otlp.spans", 3)) == "emberlake-1f2e"
    assert offset_cluster("emberlake.schema.state") is None
    assert offset_cluster("write.parquet.compression-codec") is None
    properties = {
        offset_property("a", "x.spans", 0): "1",
        offset_property("a", "x.spans", 1): "2",
        offset_property("b", "x.spans", 0): "3",
        offset_property("c", "x.spans", 0): "4",
        "emberlake.layout.log": "[]",
    }
    assert retired_offsets(properties, {"b"}) == sorted(
        [offset_property("a", "x.spans", 0), offset_property("a", "x.spans", 1)]
        + [offset_property("c", "x.spans", 0)]
    )
    assert retired_offsets(properties, {"a", "b", "c"}) == []


@pytest.mark.integration
def test_a_gone_clusters_offsets_leave_the_table_unless_the_journal_holds_it(
    settings: Settings,
) -> None:
    ensure_emberlake_topics(settings)
    catalog = open_catalog(settings)
    # As writers on two earlier embedded brokers left the table: the journal still holds
    # segments of one of them (a replay may need its offsets), the other is gone for good.
    gone = offset_property("gone-cluster", "old.spans", 0)
    held = offset_property("held-cluster", "old.spans", 1)
    ensure_table(catalog, "acme", "spans").transaction().set_properties(
        {gone: "5", held: "9"}
    ).commit_transaction()
    JournalStore(journal_dir(settings)).write_segment(
        SegmentHeader("held-cluster", time.time_ns(), os.getpid()),
        [],
        segment_name(time.time_ns(), os.getpid(), 0, CLOSED_SUFFIX),
    )

    produce(settings, "spans", [("acme", "a", spans_request("a", range(50)).SerializeToString())])
    with running_ingestor(settings):
        wait_for_seqs(settings, "acme.spans", set(range(50)))

    properties = catalog.load_table("acme.spans").properties
    assert gone not in properties
    assert properties[held] == "9"
    own = [
        key
        for key in properties
        if key.startswith(OFFSET_PREFIX)
        and offset_cluster(key) not in {"gone-cluster", "held-cluster"}
    ]
    assert own and sum(int(properties[key]) for key in own) == 1
