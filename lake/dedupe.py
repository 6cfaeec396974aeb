"""Requests a client sent twice: kept once (pure logic).

OTLP has no idempotency key. When the receiver dies after the broker took a request but before
the client heard so, the client sends the same request again and the broker holds it twice. The
receiver stamps every record with ``emberlake-request-id``, a digest of tenant, signal and value
(:func:`ingest.otlp_receiver.export.request_id`); both copies share the key, so they share the
partition, and the copy at the higher offset is the duplicate.

The decision depends only on the log: a record is a duplicate iff an equal id sits at a lower
offset of its partition, at most ``remembered`` records before it. Reading a partition again
after a rewind gives the same answers, so a duplicate is dropped in every attempt or in none. A
writer that takes over a partition (a restart, a rebalance) first re-reads the ``remembered``
records below its checkpoint through :meth:`RecentRequests.remember`, so it decides as a writer
that never stopped would.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from emberlake.settings import LakeSettings
from ingest.topics import HEADER_REQUEST_ID
from lake.batch import Record
from lake.offsets import TopicPartition

#: Request ids remembered per partition: minutes of traffic even at high rates.
REMEMBERED = LakeSettings.dedupe_records


class RecentRequests:
    """The request ids last read per partition, with the offset each was first seen at."""

    def __init__(self, remembered: int = REMEMBERED) -> None:
        self.remembered = remembered
        self._seen: dict[TopicPartition, OrderedDict[str, int]] = {}
        self.dropped = 0

    def duplicate(self, record: Record) -> bool:
        """True if the record repeats a request read at a lower offset of its partition."""
        if self._repeats(record):
            self.dropped += 1
            return True
        return False

    def remember(self, record: Record) -> None:
        """Note a record from below the checkpoint (already stored, or dropped as a repeat)."""
        self._repeats(record)

    def _repeats(self, record: Record) -> bool:
        request = record.header(HEADER_REQUEST_ID)
        if not request:
            return False
        seen = self._seen.setdefault(record.tp, OrderedDict())
        first = seen.get(request)
        if first is None:
            seen[request] = record.offset
            if len(seen) > self.remembered:
                seen.popitem(last=False)
            return False
        if first < record.offset:
            return True
        if record.offset < first:  # read again from further back (a rewind): the earlier wins
            seen[request] = record.offset
        return False

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        for tp in partitions:
            self._seen.pop(tp, None)
