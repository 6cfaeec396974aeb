"""Well-formed OTLP with extreme values never fails a lake writer batch.

A batch is flattened and converted to Arrow as a whole, so one record whose value Arrow refuses
(a count past int64, a time past 2262, a duration past 2^53 ns) would fail every record read
with it, and the same batch again after every restart: a stalled partition. Every request the
receiver accepts must flatten, alone and together with others.
"""

from __future__ import annotations

import random

import pyarrow as pa
import pytest

from emberlake.errors import InvalidRequest
from ingest.otlp_receiver.export import decode_export
from ingest.otlp_receiver.signals import OTLP_SIGNALS
from lake.flatten import columns_for, schema_for
from tests.security.hostile import extreme_message

MESSAGES = 1500


@pytest.mark.parametrize("signal", OTLP_SIGNALS, ids=lambda s: s.name)
def test_accepted_requests_with_extreme_values_always_flatten(signal) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(f"extreme-{signal.name}")
    together = columns_for(signal.kafka_signal)
    accepted = 0
    for n in range(MESSAGES // len(OTLP_SIGNALS)):
        raw = extreme_message(signal.request_type(), rng).SerializeToString()
        try:
            decoded = decode_export(signal, raw)
        except InvalidRequest:
            continue  # the receiver refuses it: never reaches the writer
        for batch in decoded.batches:
            alone = columns_for(signal.kafka_signal)
            # Well-formed and accepted by the receiver: stored, not set aside as a dead letter.
            alone.add(batch.payload)
            accepted += 1
            table = alone.to_arrow()
            assert table.schema.equals(schema_for(signal.kafka_signal), check_metadata=False), n
            together.add(batch.payload)
    assert accepted > 50, "too few requests got through to test anything"
    table: pa.Table = together.to_arrow()
    assert table.num_rows >= 0
