"""Session store on a local (or shared POSIX) folder.

Write-once entries are made by writing a private temporary file, fsyncing it, then hard-linking
it to its final name: ``link`` fails if the name exists, so exactly one of several racing writers
wins, and a reader never sees a half-written entry. The folder is fsynced after a link so a crash
cannot lose a slot that a writer was told it won.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from emberlake.errors import SessionError

from .store import KeyValueStore


class LocalObjectStore(KeyValueStore):
    """A folder: blobs under ``objects/``, slots and references as small files."""

    def __init__(self, root: Path):
        self.root = Path(root).resolve()

    def describe(self) -> str:
        return f"session store {self.root}"

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if not key or any(p in ("", ".", "..") for p in parts):
            raise SessionError(f"invalid store key {key!r}")
        return self.root.joinpath(*parts)

    def _staged(self, target: Path, data: bytes) -> Path:
        """A fsynced temporary file beside ``target`` holding ``data``."""
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
        return Path(name)

    @staticmethod
    def _sync_dir(path: Path) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def create_if_absent(self, key: str, data: bytes) -> bool:
        target = self._path(key)
        staged = self._staged(target, data)
        try:
            os.link(staged, target)
        except FileExistsError:
            return False
        finally:
            staged.unlink(missing_ok=True)
        self._sync_dir(target.parent)
        return True

    def read(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None

    def write(self, key: str, data: bytes) -> None:
        target = self._path(key)
        staged = self._staged(target, data)
        os.replace(staged, target)
        self._sync_dir(target.parent)

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink()
        except (FileNotFoundError, NotADirectoryError):
            pass

    def list(self, prefix: str) -> Iterator[str]:
        base = self._path(prefix.rstrip("/")) if prefix.strip("/") else self.root
        if not base.is_dir():
            return
        for dirpath, _dirs, files in os.walk(base):
            rel = Path(dirpath).relative_to(self.root).as_posix()
            for name in files:
                if not name.startswith(".tmp-"):
                    yield name if rel == "." else f"{rel}/{name}"
