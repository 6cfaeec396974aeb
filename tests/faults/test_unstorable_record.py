"""One record the lake cannot store must not stall its partition.

Batches are converted to Arrow as a whole, so a single record with a value Arrow refuses fails
its batch, and would fail it again after every rewind or restart. The writer then reads the
partition again record by record, sets that one record aside as a dead letter with the reason,
and goes on. No such record is known any more (the ones found were fixed, and
``tests/security/test_extreme_values.py`` keeps it so); to test the safety net, the span
flattener is made to refuse spans named "poison" the way Arrow refused the values that were.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pyarrow as pa
import pytest

from emberlake.settings import Settings
from ingest.kafka import ensure_emberlake_topics
from lake.catalog import open_catalog
from lake.flatten.spans import SpanColumns
from tests.lake.lakecheck import running_ingestor, seq_counts, table_rows, wait_for, wait_for_seqs
from tests.lake.otlp_records import produce, spans_request

pytestmark = pytest.mark.integration


def test_an_unstorable_record_goes_to_the_dead_letters(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = SpanColumns.to_arrow

    def to_arrow(self: SpanColumns) -> pa.Table:
        if "poison" in self.name:
            raise pa.ArrowInvalid("Integer value out of range (injected)")
        return original(self)

    monkeypatch.setattr(SpanColumns, "to_arrow", to_arrow)
    settings = settings.replace(lake=dataclasses.replace(settings.lake, batch_max_seconds=0.3))
    ensure_emberlake_topics(settings)
    poison = spans_request("svc", [1000])
    poison.resource_spans[0].scope_spans[0].spans[0].name = "poison"
    records: list[tuple[str, str, bytes]] = [
        ("acme", "svc", spans_request("svc", range(i, i + 10)).SerializeToString())
        for i in range(0, 50, 10)
    ]
    records.insert(2, ("acme", "svc", poison.SerializeToString()))
    produce(settings, "spans", records)
    catalog = open_catalog(settings)
    with running_ingestor(settings):
        wait_for_seqs(settings, "acme.spans", set(range(50)))

        def letters() -> list[dict[str, Any]]:
            rows = table_rows(catalog, "acme.dead_letters")
            return [] if rows is None else rows.to_pylist()

        wait_for(lambda: bool(letters()), 60, what="the dead letter")
        produce(
            settings,
            "spans",
            [("acme", "svc", spans_request("svc", range(50, 60)).SerializeToString())],
        )
        wait_for_seqs(settings, "acme.spans", set(range(60)))
    counts = seq_counts(table_rows(catalog, "acme.spans"))
    assert set(counts) == set(range(60)) and max(counts.values()) == 1
    [letter] = letters()
    assert "cannot be stored" in letter["reason"] and "out of range" in letter["reason"]
    assert letter["value"] == poison.SerializeToString()
