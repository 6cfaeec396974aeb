"""Where the lake records how far it has read Kafka: table offsets and writer checkpoints.

Two kinds of marks make the writer exactly-once:

* **Table offsets.** Table property ``emberlake.offset.<cluster>.<topic>.<partition>`` = the next
  offset to read for that partition, committed in the same Iceberg transaction as the rows. A
  record at offset ``o`` of partition ``p`` is already in table ``T`` iff ``o < offset(T, p)``.
* **Checkpoints.** One partition carries many tenants, so a batch commits several tables in turn
  and a crash can leave some ahead of others. The checkpoint of a partition (a property of the
  reserved ``emberlake`` namespace) is written only after *every* table of a batch committed, so
  every record below it is in its table. A writer resumes a partition at its checkpoint (or the
  beginning) and skips records that their table already holds.

The cluster id is part of both keys: a fresh embedded broker starts at offset 0 again with a new
cluster id, and marks recorded against the old one no longer apply.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping

from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

from lake.tables import SYSTEM_NAMESPACE, ensure_namespace

log = logging.getLogger(__name__)

OFFSET_PREFIX = "emberlake.offset."
CHECKPOINT_PREFIX = "checkpoint."

#: (topic, partition)
TopicPartition = tuple[str, int]


def offset_property(cluster_id: str, topic: str, partition: int) -> str:
    """The table property holding the next offset of a partition committed to that table."""
    return f"{OFFSET_PREFIX}{cluster_id}.{topic}.{partition}"


def checkpoint_property(cluster_id: str, topic: str, partition: int) -> str:
    """The namespace property holding a partition's writer checkpoint."""
    return f"{CHECKPOINT_PREFIX}{cluster_id}.{topic}.{partition}"


def offset_cluster(key: str) -> str | None:
    """The cluster id a table offset property belongs to (None: not an offset property).
    Kafka cluster ids hold no dots, topic names may: the id is the first dotted part."""
    if not key.startswith(OFFSET_PREFIX):
        return None
    return key[len(OFFSET_PREFIX) :].split(".", 1)[0] or None


def retired_offsets(properties: Mapping[str, str], keep: Collection[str]) -> list[str]:
    """The offset properties of clusters not in ``keep``: a broker cluster that is gone (an
    embedded broker restarted empty) never produces to its partitions again, so its table
    offsets only grow the table's metadata, once nothing needs them to tell what the lake holds
    (the receiver's ack journal does, while it keeps segments of that cluster)."""
    return sorted(
        key
        for key in properties
        if (cluster := offset_cluster(key)) is not None and cluster not in keep
    )


def parse_offset(value: str | None) -> int | None:
    """A stored offset, or None when absent or unreadable (then nothing counts as committed)."""
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        log.warning("ignoring unreadable stored offset %r", value)
        return None


class CheckpointStore:
    """Writer checkpoints kept as properties of the catalog's ``emberlake`` namespace.

    Each key is written by the one writer that owns the partition, so writers on different
    partitions never overwrite each other (SQL catalogs store one row per property).
    """

    def __init__(self, catalog: Catalog, cluster_id: str):
        self.catalog = catalog
        self.cluster_id = cluster_id
        ensure_namespace(catalog, SYSTEM_NAMESPACE)

    def load(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int | None]:
        """The checkpoint of each partition (None: never checkpointed on this cluster)."""
        properties = self.catalog.load_namespace_properties(SYSTEM_NAMESPACE)
        return {
            (topic, part): parse_offset(
                properties.get(checkpoint_property(self.cluster_id, topic, part))
            )
            for topic, part in partitions
        }

    def forget_other_clusters(self) -> int:
        """Remove the checkpoints recorded against other cluster ids; returns how many.

        A broker restarted empty (the embedded one) gets a new id, and the old checkpoints
        never apply again. Removing one is safe even if it were still in use: a writer without
        a checkpoint reads from the beginning and skips what the tables already hold.
        """
        properties = self.catalog.load_namespace_properties(SYSTEM_NAMESPACE)
        own = f"{CHECKPOINT_PREFIX}{self.cluster_id}."
        stale = [k for k in properties if k.startswith(CHECKPOINT_PREFIX) and not k.startswith(own)]
        if stale:
            self.catalog.update_namespace_properties(SYSTEM_NAMESPACE, removals=set(stale))
        return len(stale)

    def save(self, positions: Mapping[TopicPartition, int]) -> None:
        """Record that every record below each position is in its table."""
        if not positions:
            return
        self.catalog.update_namespace_properties(
            SYSTEM_NAMESPACE,
            updates={
                checkpoint_property(self.cluster_id, topic, part): str(offset)
                for (topic, part), offset in positions.items()
            },
        )


class TableOffsets:
    """Reads the offsets tables hold, each time afresh from the catalog (no shared table
    objects, so it is safe beside a committer thread); a missing table holds nothing."""

    def __init__(self, catalog: Catalog, cluster_id: str):
        self.catalog = catalog
        self.cluster_id = cluster_id

    def read(self, namespace: str, table: str, tp: TopicPartition) -> int | None:
        try:
            properties = self.catalog.load_table(f"{namespace}.{table}").properties
        except (NoSuchTableError, NoSuchNamespaceError):
            return None
        return parse_offset(properties.get(offset_property(self.cluster_id, *tp)))
