"""The receiver's ack journal: acknowledged records kept on local disk until the lake has them.

The embedded broker keeps records in memory only. With the journal on, the receiver writes every
record Kafka acknowledged to local segment files (:mod:`ingest.journal.store`) before it answers
the client (:class:`JournalSink`), deletes closed segments once the lake's checkpoints cover them
(:class:`JournalTrimmer`), and after the broker restarts, before the lake writer starts,
``emberlake up`` (or ``emberlake broker``, or ``emberlake journal replay``) produces what the lake
lacks into the new broker (:func:`replay_journal`). The segment format
(:mod:`ingest.journal.segment`), the keep/replay decisions (:mod:`ingest.journal.policy`) and the
counting behind ``emberlake journal status`` (:mod:`ingest.journal.status`) are pure.
"""

from __future__ import annotations

from pathlib import Path

from emberlake.errors import ConfigError
from emberlake.settings import Settings
from ingest.journal.replay import ReplayReport, replay_journal
from ingest.journal.segment import JournalEntry, SegmentHeader, decode_segment
from ingest.journal.sink import JournalSink, JournalTrimmer, journal_health, lake_checkpoints
from ingest.journal.store import JournalStore, JournalWriter

MODES = ("auto", "on", "off")


def journal_enabled(settings: Settings) -> bool:
    """Whether the receiver journals: ``auto`` means exactly when the broker is embedded."""
    mode = settings.receiver.journal.strip().lower()
    if mode not in MODES:
        raise ConfigError(f"receiver.journal must be one of {', '.join(MODES)}, not {mode!r}")
    return settings.embedded_broker if mode == "auto" else mode == "on"


def journal_dir(settings: Settings) -> Path:
    """Where the journal's segments live: ``<data_dir>/receiver/journal``."""
    return settings.data_path / "receiver" / "journal"


__all__ = [
    "JournalEntry",
    "JournalSink",
    "JournalStore",
    "JournalTrimmer",
    "JournalWriter",
    "ReplayReport",
    "SegmentHeader",
    "decode_segment",
    "journal_dir",
    "journal_enabled",
    "journal_health",
    "lake_checkpoints",
    "replay_journal",
]
