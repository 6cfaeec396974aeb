"""The ack journal on disk: one folder of segment files, one writer per process.

A segment being written is named ``<created_ns>-<pid>-<seq>.open`` and renamed to ``.seg`` when
closed (on rolling or at a clean stop); the pid and creation time keep processes sharing a folder
from colliding. A ``.open`` file whose process is gone (it crashed) counts as closed. Writes are
plain ``write()`` calls: once one returns, the data is in the kernel and survives the process or
the broker dying; ``fsync`` (opt-in) makes it survive a power loss too, at a cost per request.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from emberlake.errors import JournalError
from ingest.journal.policy import SegmentSummary
from ingest.journal.segment import (
    DecodedSegment,
    JournalEntry,
    SegmentHeader,
    decode_header,
    decode_segment,
    encode_entries,
    encode_header,
)

log = logging.getLogger(__name__)

OPEN_SUFFIX = ".open"
#: Bytes read to find a segment's header (more only if its list of superseded names is long).
HEADER_READ_BYTES = 64 * 1024
CLOSED_SUFFIX = ".seg"


def _pid_of(name: str) -> int | None:
    try:
        return int(name.split("-")[1])
    except (IndexError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class JournalStore:
    """The journal folder: which segments exist, reading and deleting them."""

    def __init__(self, directory: Path):
        self.directory = directory

    def names(self) -> list[str]:
        """Every segment file, oldest first (names start with the creation time)."""
        if not self.directory.is_dir():
            return []
        return sorted(
            p.name
            for p in self.directory.iterdir()
            if p.name.endswith((OPEN_SUFFIX, CLOSED_SUFFIX))
        )

    def usage(self) -> tuple[int, int]:
        """(segments, bytes) on disk now."""
        count = size = 0
        for name in self.names():
            with contextlib.suppress(FileNotFoundError):  # trimmed meanwhile
                size += (self.directory / name).stat().st_size
                count += 1
        return count, size

    def closed(self, own_pid: int | None = None) -> list[str]:
        """Segments nobody writes any more: closed ones, and open ones of dead processes."""
        out = []
        for name in self.names():
            if name.endswith(CLOSED_SUFFIX):
                out.append(name)
                continue
            pid = _pid_of(name)
            if pid is not None and pid != own_pid and not _alive(pid):
                out.append(name)
        return out

    def read(self, name: str) -> DecodedSegment:
        data = (self.directory / name).read_bytes()
        return decode_segment(data)

    def read_header(self, name: str) -> SegmentHeader | None:
        """A segment's header, reading only its start (all of it for a long superseded list)."""
        with (self.directory / name).open("rb") as f:
            header = decode_header(f.read(HEADER_READ_BYTES))
            if header is None:
                f.seek(0)
                header = decode_header(f.read())
        return header

    def headers(self) -> dict[str, SegmentHeader | None]:
        """Every segment's header, oldest first (None: unreadable); segments deleted while
        listing are left out."""
        out: dict[str, SegmentHeader | None] = {}
        for name in self.names():
            with contextlib.suppress(FileNotFoundError):  # trimmed or replayed meanwhile
                out[name] = self.read_header(name)
        return out

    def delete(self, names: Sequence[str]) -> None:
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                (self.directory / name).unlink()

    def drop_superseded(self, headers: dict[str, SegmentHeader]) -> list[str]:
        """Delete segments a completed replay superseded (a crash may have come between its
        segment being written and the old ones being deleted), also from ``headers``; returns
        their names."""
        gone = sorted({old for h in headers.values() for old in h.supersedes if old in headers})
        self.delete(gone)
        for name in gone:
            del headers[name]
        return gone

    def write_segment(
        self, header: SegmentHeader, entries: Sequence[JournalEntry], name: str
    ) -> None:
        """Write a whole closed segment durably (fsync, then an atomic rename)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / name
        tmp = final.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            _write_all(fd, encode_header(header) + encode_entries(entries))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
        _fsync_dir(self.directory)


def segment_name(created_ns: int, pid: int, seq: int, suffix: str = OPEN_SUFFIX) -> str:
    return f"{created_ns:020d}-{pid}-{seq:06d}{suffix}"


class JournalWriter:
    """Appends acknowledged records to this process's current segment, rolling it by size and
    age. Thread-safe: the receiver's event loop appends, the trimmer thread may roll."""

    def __init__(
        self,
        store: JournalStore,
        *,
        fsync: bool = False,
        segment_bytes: int = 64 * 1024 * 1024,
        segment_seconds: float = 30.0,
        clock_ns: Callable[[], int] = time.time_ns,
    ):
        self.store = store
        self.fsync = fsync
        self.segment_bytes = segment_bytes
        self.segment_seconds = segment_seconds
        self.pid = os.getpid()
        self._clock_ns = clock_ns
        self._lock = threading.Lock()
        self._cluster: str | None = None
        self._fd: int | None = None
        self._name = ""
        self._size = 0
        self._opened_ns = 0
        self._seq = 0
        self._summary: SegmentSummary | None = None
        #: Summaries of the segments this writer closed, for trimming without reading them.
        self.closed_summaries: dict[str, SegmentSummary] = {}
        #: Entries written, and writes that failed (their requests were not acknowledged).
        self.appended = 0
        self.errors = 0

    @property
    def cluster(self) -> str | None:
        return self._cluster

    @property
    def current(self) -> str:
        """Name of the segment being written ('' when none is open)."""
        return self._name

    def set_cluster(self, cluster: str) -> None:
        """Entries from now on belong to ``cluster``; a change closes the current segment."""
        with self._lock:
            if cluster != self._cluster:
                self._close_locked()
                self._cluster = cluster

    def append(self, entries: Sequence[JournalEntry]) -> None:
        """Write entries in one write (and fsync, if asked); raise JournalError on failure."""
        if not entries:
            return
        data = encode_entries(entries)
        with self._lock:
            if self._cluster is None:
                self.errors += 1
                raise JournalError("the journal does not know the broker's cluster id yet")
            try:
                if self._fd is not None and self._due_locked():
                    self._close_locked()
                if self._fd is None:
                    self._open_locked()
                assert self._fd is not None and self._summary is not None
                _write_all(self._fd, data)
                if self.fsync:
                    os.fsync(self._fd)
            except OSError as exc:
                self.errors += 1
                raise JournalError(f"cannot write the receiver's journal: {exc}") from exc
            self._size += len(data)
            self._summary.add(entries)
            self.appended += len(entries)

    def roll_if_due(self) -> None:
        """Close the current segment if it is old enough (an idle one never rolls otherwise)."""
        with self._lock:
            if self._fd is not None and self._due_locked():
                self._close_locked()

    def close(self) -> None:
        with self._lock:
            self._close_locked()

    def _due_locked(self) -> bool:
        age = (self._clock_ns() - self._opened_ns) / 1e9
        return self._size >= self.segment_bytes or age >= self.segment_seconds

    def _open_locked(self) -> None:
        assert self._cluster is not None
        self.store.directory.mkdir(parents=True, exist_ok=True)
        self._opened_ns = self._clock_ns()
        self._seq += 1
        self._name = segment_name(self._opened_ns, self.pid, self._seq)
        path = self.store.directory / self._name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        try:
            header = encode_header(SegmentHeader(self._cluster, self._opened_ns, self.pid))
            _write_all(fd, header)
        except OSError:
            os.close(fd)
            raise
        self._fd = fd
        self._size = len(header)
        self._summary = SegmentSummary(self._cluster)

    def _close_locked(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        name, self._name = self._name, ""
        summary, self._summary = self._summary, None
        try:
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        closed = name[: -len(OPEN_SUFFIX)] + CLOSED_SUFFIX
        try:
            os.rename(self.store.directory / name, self.store.directory / closed)
        except OSError as exc:
            # Still an .open file of this process: treated as closed once the process is gone.
            log.warning("could not close journal segment %s: %s", name, exc)
            return
        if summary is not None:
            self.closed_summaries[closed] = summary
