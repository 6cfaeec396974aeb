"""What the ack journal holds and what a replay would produce again (``emberlake journal status``).

:class:`StatusTally` counts decoded segments (pure: the lake's marks come in as a function);
:func:`journal_status` reads the folder and the catalog. A replay produces the entries of
clusters other than the broker's current one that the lake lacks; the current cluster's entries
are still in the broker, and those the lake holds are trimmed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emberlake.settings import Settings
from ingest.journal.segment import DecodedSegment, JournalEntry
from ingest.journal.store import JournalStore

#: Whether the lake holds an entry journalled under a cluster (None: the lake is unreadable).
HeldCheck = Callable[[str, JournalEntry], bool]


@dataclass
class ClusterStatus:
    """The journalled entries of one broker cluster."""

    cluster: str
    segments: int = 0
    records: int = 0
    #: Of them, those the lake holds (None when its marks could not be read).
    in_lake: int | None = 0

    @property
    def lacking(self) -> int | None:
        return None if self.in_lake is None else self.records - self.in_lake


@dataclass
class JournalStatus:
    """Counts over the journal folder; ``current_cluster`` is the broker's (None: unknown)."""

    directory: str
    current_cluster: str | None
    #: When it was counted (ns since the epoch).
    taken_ns: int = 0
    segments: int = 0
    bytes: int = 0
    records: int = 0
    #: When the oldest segment was opened: its first record was journalled then or later.
    oldest_ns: int | None = None
    clusters: dict[str, ClusterStatus] = field(default_factory=dict)
    #: Segments an earlier replay already produced again (deleted by the next one).
    superseded: list[str] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)
    #: Why the lake's marks could not be read ("" when they could).
    lake_error: str = ""

    @property
    def to_replay(self) -> int | None:
        """Entries a replay would produce (all clusters but the current one; every cluster when
        the broker is unreachable, as a restarted one is a new cluster); None if unknown."""
        total = 0
        for c in self.clusters.values():
            if c.cluster == self.current_cluster:
                continue
            if c.lacking is None:
                return None
            total += c.lacking
        return total

    @property
    def oldest_age(self) -> float | None:
        """Seconds since the oldest segment was opened."""
        if self.oldest_ns is None:
            return None
        return max(0.0, (self.taken_ns - self.oldest_ns) / 1e9)

    def as_dict(self) -> dict[str, Any]:
        return {
            "directory": self.directory,
            "segments": self.segments,
            "bytes": self.bytes,
            "records": self.records,
            "oldest_age_seconds": self.oldest_age,
            "current_cluster": self.current_cluster,
            "to_replay": self.to_replay,
            "clusters": [
                {
                    "cluster": c.cluster,
                    "current": c.cluster == self.current_cluster,
                    "segments": c.segments,
                    "records": c.records,
                    "in_lake": c.in_lake,
                    "lacking": c.lacking,
                }
                for c in self.clusters.values()
            ],
            "superseded": self.superseded,
            "damaged": self.damaged,
            "lake_error": self.lake_error or None,
        }

    def text(self) -> str:
        age = self.oldest_age
        lines = [
            f"journal {self.directory}: {self.segments} segments, {self.bytes:,} bytes, "
            f"{self.records:,} records"
            + (f", oldest from {age:.0f}s ago" if age is not None else "")
        ]
        for c in self.clusters.values():
            held = "lake unreadable" if c.in_lake is None else f"{c.in_lake:,} in the lake"
            tag = " (the broker's)" if c.cluster == self.current_cluster else ""
            lines.append(
                f"  cluster {c.cluster}{tag}: {c.segments} segments, {c.records:,} records, {held}"
            )
        if self.superseded:
            lines.append(f"  {len(self.superseded)} segments already replayed, to be deleted")
        lines.extend(f"  torn or damaged: {d}" for d in self.damaged)
        if self.lake_error:
            lines.append(f"  cannot read the lake's marks: {self.lake_error}")
        where = (
            f"into broker cluster {self.current_cluster}"
            if self.current_cluster
            else "into the next broker (the broker is unreachable)"
        )
        count = self.to_replay
        lines.append(
            f"a replay {where} would produce "
            + ("an unknown number of records" if count is None else f"{count:,} records")
            + " again"
        )
        return "\n".join(lines)


class StatusTally:
    """Adds segments to a :class:`JournalStatus` one at a time; ``held`` failing (the catalog,
    say) is noted in the status, and the lake's share is then unknown."""

    def __init__(self, status: JournalStatus, held: HeldCheck | None):
        self.status = status
        self._held = held

    def _count_held(self, cluster: str, entries: list[JournalEntry]) -> int | None:
        if self._held is None:
            return None
        try:
            return sum(1 for e in entries if self._held(cluster, e))
        except Exception as exc:
            self.status.lake_error = str(exc)
            self._held = None
            for c in self.status.clusters.values():
                c.in_lake = None
            return None

    def add(self, name: str, size: int, segment: DecodedSegment, superseded: bool) -> None:
        s = self.status
        s.segments += 1
        s.bytes += size
        if segment.damage:
            s.damaged.append(f"{name}: {segment.damage}")
        if segment.header is None:
            return
        header = segment.header
        if s.oldest_ns is None or header.created_ns < s.oldest_ns:
            s.oldest_ns = header.created_ns
        s.records += len(segment.entries)
        if superseded:
            s.superseded.append(name)
            return
        held = self._count_held(header.cluster, segment.entries)
        c = s.clusters.setdefault(header.cluster, ClusterStatus(header.cluster))
        c.segments += 1
        c.records += len(segment.entries)
        c.in_lake = None if held is None or c.in_lake is None else c.in_lake + held


def journal_status(
    settings: Settings, directory: Path, current_cluster: str | None
) -> JournalStatus:
    """Count the journal in ``directory`` against the lake's marks (read through the catalog);
    the lake being unreadable is reported in the status, not raised."""
    from ingest.journal.policy import in_lake
    from ingest.journal.replay import LakeMarks, writer_sets_aside
    from ingest.topics import Topics

    store = JournalStore(directory)
    status = JournalStatus(str(directory), current_cluster, taken_ns=time.time_ns())
    names = store.names()
    held: HeldCheck | None = None
    if names:
        try:
            marks = LakeMarks(settings)
        except Exception as exc:
            status.lake_error = str(exc)
        else:
            topics = Topics(settings.kafka.topic_prefix)
            set_aside = writer_sets_aside(topics)

            def check(cluster: str, entry: JournalEntry) -> bool:
                return in_lake(
                    cluster, entry, marks.checkpoint, marks.table_offset, topics, set_aside
                )

            held = check
    headers = {n: h for n, h in store.headers().items() if h is not None}
    superseded = {old for h in headers.values() for old in h.supersedes if old in headers}
    tally = StatusTally(status, held)
    for name in names:
        try:
            size = (directory / name).stat().st_size
            segment = store.read(name)
        except FileNotFoundError:
            continue
        tally.add(name, size, segment, name in superseded)
    return status
