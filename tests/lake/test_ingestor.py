"""The lake writer against the real broker and a real SQLite catalog, in this process."""

from __future__ import annotations

import dataclasses

import pytest

from emberlake.errors import CommitConflict
from emberlake.settings import Settings
from ingest.kafka import ensure_emberlake_topics
from lake.catalog import open_catalog
from lake.writer import TableAppend
from tests.lake.lakecheck import running_ingestor, seq_counts, table_rows, wait_for, wait_for_seqs
from tests.lake.otlp_records import (
    logs_request,
    metrics_request,
    produce,
    seq_batches,
    span_id_of,
    spans_request,
)

pytestmark = pytest.mark.integration


def test_spans_logs_metrics_land_once_with_attributes(settings: Settings) -> None:
    ensure_emberlake_topics(settings)
    spans = [
        ("acme", f"svc{i % 3}", spans_request(f"svc{i % 3}", seqs).SerializeToString())
        for i, seqs in enumerate(seq_batches(0, 600, 50))
    ]
    produce(settings, "spans", spans)
    produce(
        settings, "logs", [("acme", "svc0", logs_request("svc0", range(40)).SerializeToString())]
    )
    produce(
        settings,
        "metrics",
        [("acme", "svc1", metrics_request("svc1", range(30)).SerializeToString())],
    )
    with running_ingestor(settings):
        counts = wait_for_seqs(settings, "acme.spans", set(range(600)))
        wait_for_seqs(settings, "acme.logs", set(range(40)))
        wait_for_seqs(settings, "acme.metrics", set(range(30)))
    assert set(counts.values()) == {1}
    catalog = open_catalog(settings)
    rows = table_rows(catalog, "acme.spans")
    assert rows is not None and rows.num_rows == 600
    by_span = {r["span_id"]: r for r in rows.to_pylist()}
    row = by_span[span_id_of(5)]
    attrs = dict(row["attributes"])
    assert attrs == {"seq": "5", "http.route": "/r/0", "ok": "False"}
    assert row["parent_span_id"] == span_id_of(4)
    assert by_span[span_id_of(4)]["parent_span_id"] is None
    assert row["service_name"] == "svc0"
    assert dict(row["resource_attributes"])["host.name"] == "h1"
    assert row["duration_ms"] == pytest.approx(2.5)
    metric_rows = table_rows(catalog, "acme.metrics")
    assert metric_rows is not None
    assert sorted(metric_rows.column("value").to_pylist()) == [float(i) for i in range(30)]
    # Offsets were committed with the rows, one property per partition that fed the table.
    properties = catalog.load_table("acme.spans").properties
    offsets = {k: v for k, v in properties.items() if k.startswith("emberlake.offset.")}
    assert offsets and all(k.split(".")[-1].isdigit() for k in offsets)
    assert sum(int(v) for v in offsets.values()) == len(spans)


@pytest.mark.parametrize("pipeline", [True, False], ids=["pipelined", "sequential"])
def test_restart_resumes_without_duplicates(settings: Settings, pipeline: bool) -> None:
    ensure_emberlake_topics(settings)
    first = [
        ("acme", "a", spans_request("a", s).SerializeToString()) for s in seq_batches(0, 100, 10)
    ]
    produce(settings, "spans", first)
    with running_ingestor(settings, pipeline):
        wait_for_seqs(settings, "acme.spans", set(range(100)))
    second = [
        ("acme", "a", spans_request("a", s).SerializeToString()) for s in seq_batches(100, 100, 10)
    ]
    produce(settings, "spans", second)
    with running_ingestor(settings, pipeline):
        counts = wait_for_seqs(settings, "acme.spans", set(range(200)))
    assert set(counts.values()) == {1}


@pytest.mark.parametrize("lookback", [20_000, 0], ids=["remembered", "forgotten"])
def test_a_request_resent_after_a_writer_restart_is_stored_once(
    settings: Settings, lookback: int
) -> None:
    """The first copy is committed and checkpointed before the writer stops; the copy a client
    sent again arrives after. The restarted writer re-reads the records below its checkpoint to
    remember their request ids (with no lookback, it cannot know, and stores the copy)."""
    settings = settings.replace(lake=dataclasses.replace(settings.lake, dedupe_records=lookback))
    ensure_emberlake_topics(settings)
    batches = seq_batches(0, 100, 10)
    requests = [("acme", "a", spans_request("a", s).SerializeToString()) for s in batches]
    ids = [f"request-{i}" for i in range(len(requests))]
    produce(settings, "spans", requests[:5], request_ids=ids[:5])
    with running_ingestor(settings):
        wait_for_seqs(settings, "acme.spans", set(range(50)))
    # Request 3 again (the receiver died before acknowledging it), then the rest.
    produce(settings, "spans", [requests[3], *requests[5:]], request_ids=[ids[3], *ids[5:]])
    with running_ingestor(settings) as ingestor:
        counts = wait_for_seqs(settings, "acme.spans", set(range(100)))
        dropped = ingestor.recent.dropped
    resent = set(batches[3])
    if lookback:
        assert set(counts.values()) == {1} and dropped == 1
    else:
        assert {s for s, n in counts.items() if n == 2} == resent and dropped == 0


def test_bad_record_goes_to_dead_letters_and_neighbours_land(settings: Settings) -> None:
    ensure_emberlake_topics(settings)
    good_before = spans_request("a", range(10)).SerializeToString()
    good_after = spans_request("a", range(10, 20)).SerializeToString()
    garbage = b"\x0a\xff\xff\xff\xff\x0f not a protobuf"
    produce(settings, "spans", [("acme", "a", good_before)])
    produce(settings, "spans", [("acme", "a", garbage)])
    produce(settings, "spans", [("acme", "a", good_after)])
    produce(settings, "spans", [("Not A Tenant!", "a", good_before)])
    catalog = open_catalog(settings)
    with running_ingestor(settings):
        counts = wait_for_seqs(settings, "acme.spans", set(range(20)))
        wait_for(
            lambda: (
                table_rows(catalog, "acme.dead_letters") is not None
                and table_rows(catalog, "emberlake.dead_letters") is not None
            ),
            30,
            what="dead letters",
        )
    assert set(counts.values()) == {1}
    dead = table_rows(catalog, "acme.dead_letters")
    assert dead is not None and dead.num_rows == 1
    letter = dead.to_pylist()[0]
    assert letter["value"] == garbage
    assert letter["tenant"] == "acme" and letter["key"] == "acme/a"
    assert "decode" in letter["reason"]
    unknown = table_rows(catalog, "emberlake.dead_letters")
    assert unknown is not None and unknown.num_rows == 1
    assert unknown.to_pylist()[0]["reason"] == "invalid tenant"
    assert seq_counts(table_rows(catalog, "acme.spans")) == dict.fromkeys(range(20), 1)


def test_a_dropped_batch_is_read_again_from_the_checkpoint(settings: Settings) -> None:
    ensure_emberlake_topics(settings)
    records = [
        ("acme", "a", spans_request("a", s).SerializeToString()) for s in seq_batches(0, 300, 10)
    ]
    produce(settings, "spans", records)
    conflicts: list[str] = []
    with running_ingestor(settings) as ingestor:
        real_append = ingestor.writer.append

        def append_once_conflicting(job: TableAppend) -> None:
            if not conflicts:
                conflicts.append(job.name)
                raise CommitConflict("another writer took this partition")
            real_append(job)

        ingestor.writer.append = append_once_conflicting  # type: ignore[method-assign]
        counts = wait_for_seqs(settings, "acme.spans", set(range(300)))
    assert conflicts == ["acme.spans"]
    assert set(counts.values()) == {1}


def test_hooks_add_columns_and_properties_in_the_same_commit(settings: Settings) -> None:
    import pyarrow as pa
    from pyiceberg.table import Table

    from lake.flatten.common import DOC_KEY
    from lake.ingestor import build_ingestor

    ensure_emberlake_topics(settings)
    produce(settings, "spans", [("acme", "a", spans_request("a", range(10)).SerializeToString())])

    def promote_route(table: Table, rows: pa.Table) -> tuple[pa.Table, dict[str, str]]:
        routes = pa.array([dict(a)["http.route"] for a in rows.column("attributes").to_pylist()])
        field = pa.field(
            "attr_http_route", pa.string(), metadata={DOC_KEY: b"attribute http.route"}
        )
        return rows.append_column(field, routes), {"test.hook.rows": str(rows.num_rows)}

    ingestor = build_ingestor(settings, hooks=[promote_route])
    ingestor.subscribe()
    wait_for(lambda: ingestor.poll_once() >= 0 and ingestor.committed_rows >= 10, 60, 0)
    ingestor.close()
    table = open_catalog(settings).load_table("acme.spans")
    assert table.schema().find_field("attr_http_route").doc == "attribute http.route"
    assert table.properties["test.hook.rows"] == "10"
    routes = table.scan().to_arrow().column("attr_http_route").to_pylist()
    assert sorted(routes) == sorted(f"/r/{i % 5}" for i in range(10))


def test_an_offset_moved_by_another_writer_is_respected(settings: Settings) -> None:
    """Another writer commits a prefix of this writer's batch after it read its offsets:
    the stale commit is refused, the batch re-read, and every record lands once."""
    import dataclasses

    from ingest.kafka import cluster_id
    from lake.flatten import flatten_spans
    from lake.offsets import offset_property
    from lake.writer import IcebergWriter

    settings = settings.replace(kafka=dataclasses.replace(settings.kafka, partitions=1))
    ensure_emberlake_topics(settings)
    payloads = [spans_request("a", s).SerializeToString() for s in seq_batches(0, 100, 10)]
    produce(settings, "spans", [("acme", "a", p) for p in payloads])
    topic = f"{settings.kafka.topic_prefix}.otlp.spans"
    key = offset_property(cluster_id(settings), topic, 0)
    other = IcebergWriter(open_catalog(settings))
    raced: list[int] = []
    with running_ingestor(settings) as ingestor:
        real_append = ingestor.writer.append

        def append_after_a_rival(job: TableAppend) -> None:
            if not raced:
                # The rival stores the first 4 records (offsets 0-3) and offset 4.
                rows = flatten_spans(payloads[:4])
                other.append(TableAppend("acme", "spans", rows, {key: 4}, {key: None}))
                raced.append(4)
            real_append(job)

        ingestor.writer.append = append_after_a_rival  # type: ignore[method-assign]
        counts = wait_for_seqs(settings, "acme.spans", set(range(100)))
    assert raced == [4]
    assert set(counts.values()) == {1}
