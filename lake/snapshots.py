"""Snapshot expiry: drop old snapshots from a table's metadata so commits stay cheap.

Commit cost grows with the number of snapshots, and every compaction adds one. A snapshot is
expired only once it stopped being current more than ``retain_seconds`` ago (not merely when it
was *created* that long ago), so a query that planned on the snapshot that was current a moment
ago can still read its files. The newest ``keep_min`` snapshots are always kept, as are branch
and tag heads. Expiry deletes no files; :mod:`lake.orphans` removes what no snapshot references.
"""

from __future__ import annotations

import logging
import time

from pyiceberg.exceptions import CommitFailedException
from pyiceberg.table import Table

log = logging.getLogger(__name__)


def expirable_snapshots(
    table: Table, retain_seconds: float, keep_min: int, now: float | None = None
) -> list[int]:
    """Ids of snapshots superseded more than ``retain_seconds`` ago, beyond the newest keep_min."""
    metadata = table.metadata
    cutoff_ms = ((now if now is not None else time.time()) - retain_seconds) * 1000
    protected = {ref.snapshot_id for ref in metadata.refs.values()}
    ordered = sorted(metadata.snapshots, key=lambda s: (s.timestamp_ms, s.sequence_number or 0))
    newest = {s.snapshot_id for s in ordered[-keep_min:]} if keep_min > 0 else set()
    expired: list[int] = []
    for snapshot, successor in zip(ordered, ordered[1:], strict=False):
        if snapshot.snapshot_id in protected or snapshot.snapshot_id in newest:
            continue
        # Superseded when the next snapshot was committed.
        if successor.timestamp_ms < cutoff_ms:
            expired.append(snapshot.snapshot_id)
    return expired


def expire_snapshots(table: Table, retain_seconds: float, keep_min: int, attempts: int = 5) -> int:
    """Expire what :func:`expirable_snapshots` selects; returns how many were expired."""
    for attempt in range(attempts):
        table.refresh()
        ids = expirable_snapshots(table, retain_seconds, keep_min)
        if not ids:
            return 0
        try:
            table.maintenance.expire_snapshots().by_ids(ids).commit()
        except (CommitFailedException, ValueError):
            # ValueError: another process expired some of these snapshots first.
            time.sleep(0.05 * (attempt + 1))
            continue
        log.debug("expired %d snapshots of %s", len(ids), ".".join(table.name()))
        return len(ids)
    return 0
