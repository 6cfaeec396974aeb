"""Component status files: how a supervisor learns that a process is drained, without a broker.

A component writes ``<data_dir>/run/<name>-<pid>.json`` now and then (atomically, by rename). The
supervisor reads them to decide, for example, that every lake writer has consumed all it could
and holds nothing uncommitted, so the embedded broker may be stopped without losing data.
High watermarks cannot tell that here: the embedded broker reports them wrongly.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Status:
    """What one process last said about itself."""

    name: str
    pid: int
    updated_at: float
    #: Wall-clock time since which it has had nothing to do, or None while busy.
    idle_since: float | None
    #: Records received but not yet durable (for the writer: rows in the open batch).
    pending: int = 0

    def idle_for(self, now: float) -> float:
        return 0.0 if self.idle_since is None else max(0.0, now - self.idle_since)


class StatusFile:
    """The status file of this process; ``update`` is cheap enough to call from a poll loop."""

    def __init__(self, run_dir: Path, name: str, min_interval: float = 0.25):
        self.path = run_dir / f"{name}-{os.getpid()}.json"
        self.name = name
        self.min_interval = min_interval
        self._last = 0.0
        self._idle_since: float | None = None
        run_dir.mkdir(parents=True, exist_ok=True)

    def update(self, busy: bool, pending: int = 0, force: bool = False) -> None:
        now = time.time()
        if busy or pending:
            self._idle_since = None
        elif self._idle_since is None:
            self._idle_since = now
        if not force and now - self._last < self.min_interval:
            return
        self._last = now
        status = Status(self.name, os.getpid(), now, self._idle_since, pending)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(status)))
        os.replace(tmp, self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_statuses(run_dir: Path, name: str) -> list[Status]:
    """Statuses of live processes called ``name``; files of dead processes are removed."""
    out: list[Status] = []
    for path in run_dir.glob(f"{name}-*.json"):
        try:
            status = Status(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            continue
        if _alive(status.pid):
            out.append(status)
        else:
            path.unlink(missing_ok=True)
    return out


def wait_drained(run_dir: Path, name: str, quiet_seconds: float, timeout: float) -> bool:
    """Wait until every live ``name`` process has been idle with nothing pending for a while."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = time.time()
        statuses = read_statuses(run_dir, name)
        if statuses and all(
            s.pending == 0 and s.idle_for(now) >= quiet_seconds and now - s.updated_at < 5
            for s in statuses
        ):
            return True
        time.sleep(0.2)
    return False
