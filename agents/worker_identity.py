"""A worker's stable name on session leases, locked so one live process at a time bears it.

A lease names its holder. When that name is stable across restarts, a worker restarted after a
crash recognises the leases its previous incarnation held and takes them back at once instead of
waiting ``agents.session_lease_seconds`` for them to expire (``SessionLeases.acquire`` lets a
holder take over its own live lease).

The name is ``agents.worker_id`` when set. Otherwise it is this host's name plus an id generated
once and kept in ``data_dir/agents/workers/id`` (so two data folders on one host sharing an S3
session store still differ), plus ``-2``, ``-3``... for a second, third worker running at once
from the same data folder: each live worker holds an exclusive ``flock`` on
``data_dir/agents/workers/<name>.lock``, takes the first name whose lock is free, and the kernel
drops the lock when the process dies, however it dies. A restarted worker thus gets the same name
back, and two live workers on one data folder never share one. An explicit ``agents.worker_id``
whose lock is held is refused.

The lock cannot see processes on other hosts or with another data folder. Two such processes given
the same ``agents.worker_id`` by mistake each take the other's leases as their own: each step's
compare-and-swap still keeps every transcript correct (a step that lost the race is discarded),
the displaced worker's lease keeper notices at its next renewal, stops after its current step and
logs an error naming the shared id, and the cost is duplicated model calls until one is renamed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import socket
import uuid
from pathlib import Path

from emberlake.errors import ConfigError
from emberlake.settings import Settings

#: Worker ids: letters, digits, ".", "_" and "-", starting with a letter or digit.
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
#: At most this many workers at once from one data folder.
MAX_SLOTS = 64


def _host() -> str:
    name = re.sub(r"[^A-Za-z0-9.-]+", "-", socket.gethostname()).strip(".-")
    return name[:63] or "host"


def _folder_id(folder: Path) -> str:
    """The id generated once for this data folder (created atomically by the first to ask)."""
    path = folder / "id"
    if not path.exists():
        tmp = folder / f".id-{uuid.uuid4().hex}"
        tmp.write_text(uuid.uuid4().hex[:8] + "\n")
        try:
            os.link(tmp, path)  # fails if another process was first: its id stands
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    text = path.read_text().strip()
    if not ID_RE.match(text):
        raise ConfigError(f"{path} holds {text!r}, not a worker id: delete the file to renew it")
    return text


class WorkerIdentity:
    """A worker id and the lock that reserves it; ``close`` (or process exit) frees it."""

    def __init__(self, worker_id: str, lock_path: Path, fd: int):
        self.id = worker_id
        self.lock_path = lock_path
        self._fd: int | None = fd

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __repr__(self) -> str:
        return f"WorkerIdentity({self.id!r})"


def _lock(path: Path) -> int | None:
    """An open descriptor holding an exclusive flock on ``path``, or None if another holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    # For people (and the error below) wondering who holds it.
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _holder_pid(path: Path) -> str:
    with contextlib.suppress(OSError):
        return path.read_text().strip() or "?"
    return "?"


def claim_worker_id(settings: Settings) -> WorkerIdentity:
    """Reserve this process's worker id (see the module docs)."""
    folder = settings.data_path / "agents" / "workers"
    folder.mkdir(parents=True, exist_ok=True)
    explicit = settings.agents.worker_id.strip()
    if explicit:
        if not ID_RE.match(explicit):
            raise ConfigError(
                f"agents.worker_id {explicit!r} is not a valid id: use up to 128 letters, digits,"
                " '.', '_' and '-', starting with a letter or digit"
            )
        path = folder / f"{explicit}.lock"
        fd = _lock(path)
        if fd is None:
            raise ConfigError(
                f"agents.worker_id {explicit!r} is in use by a live worker (pid"
                f" {_holder_pid(path)}) on this data folder: give each worker its own id, or"
                " leave agents.worker_id empty to have one chosen"
            )
        return WorkerIdentity(explicit, path, fd)
    base = f"{_host()}-{_folder_id(folder)}"
    for slot in range(1, MAX_SLOTS + 1):
        name = base if slot == 1 else f"{base}-{slot}"
        path = folder / f"{name}.lock"
        fd = _lock(path)
        if fd is not None:
            return WorkerIdentity(name, path, fd)
    raise ConfigError(
        f"{MAX_SLOTS} agent workers already run from {settings.data_path}: stop some, or give"
        " workers on other data folders the load"
    )
