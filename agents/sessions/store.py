"""Where sessions are kept: the object store interface and the registry of its backends.

A store holds two kinds of entries under string keys:

- **blobs**, addressed by the SHA-256 of their bytes (``put``/``get``). Writing a blob twice is
  harmless, so a crashed writer leaves at worst an unreferenced blob.
- **slots**, written at most once (``create_if_absent``). This is the compare-and-swap that
  orders a session: of two writers racing for the same slot exactly one wins, the other learns it
  lost and starts over from what the winner wrote. On S3 it is a conditional PUT with
  ``If-None-Match: *``; on a local folder an exclusive hard link.

Named references are the only overwritable entries (``write``): labels, never the source of
truth for a session's order. ``delete`` removes entries nobody needs any more (old lease epochs,
see ``leases.py``); nothing may rely on a deleted slot staying absent.

Backends are chosen by URL: a folder path or ``file://`` (default), or ``s3://bucket/prefix``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import urlparse

from emberlake.errors import ConfigError, CorruptObject, SessionError
from emberlake.settings import Settings, parse_pairs

from .objects import content_address, is_address


@runtime_checkable
class ObjectStore(Protocol):
    """Content-addressed blobs plus write-once slots and overwritable references."""

    def put(self, data: bytes) -> str:
        """Store a blob (if absent) and return its address."""
        ...

    def get(self, address: str) -> bytes:
        """The blob with this address, verified; :class:`SessionError` if absent."""
        ...

    def create_if_absent(self, key: str, data: bytes) -> bool:
        """Write ``data`` at ``key`` unless something is there; True if this call wrote it."""
        ...

    def read(self, key: str) -> bytes | None:
        """The entry at ``key``, or None."""
        ...

    def write(self, key: str, data: bytes) -> None:
        """Overwrite the entry at ``key`` (references only)."""
        ...

    def delete(self, key: str) -> None:
        """Remove the entry at ``key`` if it is there."""
        ...

    def list(self, prefix: str) -> Iterator[str]:
        """Keys under ``prefix`` (a folder-like prefix ending in '/'), in no particular order."""
        ...

    def describe(self) -> str:
        """Where this store is, for messages."""
        ...


def blob_key(address: str) -> str:
    """Blobs fan out by their first two hex digits, so no folder or listing grows too large."""
    return f"objects/{address[:2]}/{address}"


class KeyValueStore:
    """Blob methods built on the raw key methods that each backend implements."""

    def put(self, data: bytes) -> str:
        # A blob that is already there holds the same bytes, so losing this race is fine.
        address = content_address(data)
        self.create_if_absent(blob_key(address), data)
        return address

    def get(self, address: str) -> bytes:
        if not is_address(address):
            raise SessionError(f"{address!r} is not an object address (64 hex digits)")
        data = self.read(blob_key(address))
        if data is None:
            raise SessionError(f"object {address[:12]} is not in {self.describe()}")
        if content_address(data) != address:
            raise CorruptObject(f"object {address[:12]} in {self.describe()} fails its hash check")
        return data

    # Implemented by each backend.
    def create_if_absent(self, key: str, data: bytes) -> bool:
        raise NotImplementedError

    def read(self, key: str) -> bytes | None:
        raise NotImplementedError

    def write(self, key: str, data: bytes) -> None:
        raise NotImplementedError

    def delete(self, key: str) -> None:
        raise NotImplementedError

    def list(self, prefix: str) -> Iterator[str]:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


def open_store(url: str, options: Mapping[str, str] | None = None) -> ObjectStore:
    """The store a URL names: a folder, ``file:///folder`` or ``s3://bucket/prefix``."""
    parsed = urlparse(url)
    if parsed.scheme == "s3":
        from .s3_store import S3ObjectStore

        if not parsed.netloc:
            raise ConfigError(f"sessions URL {url!r} names no bucket: use s3://bucket/prefix")
        return S3ObjectStore.from_options(parsed.netloc, parsed.path.strip("/"), options or {})
    if parsed.scheme in ("", "file"):
        from .local_store import LocalObjectStore

        path = parsed.path if parsed.scheme == "file" else url
        return LocalObjectStore(Path(path))
    raise ConfigError(f"unsupported sessions URL {url!r}: use a folder, file:// or s3://")


def store_for(settings: Settings) -> ObjectStore:
    """The session store the settings name (default: ``data_dir/sessions``)."""
    url = settings.agents.sessions_url or str(settings.data_path / "sessions")
    return open_store(url, parse_pairs(settings.agents.sessions_options))
