"""Where resources are kept: one small interface, backends chosen by URI scheme.

A backend stores resources as JSON objects keyed by name, with their parent and collection, and
runs a unit of work in one transaction (``with store.transaction() as tx: ...``), so the
standard methods can check an etag and write without another writer slipping in between.
SQLite (``sqlite:///path``, the default, ``data_dir/resources.db``) is the one backend today; a
PostgreSQL backend would implement the same two protocols.
"""

from __future__ import annotations

from collections.abc import Collection
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from emberlake.errors import ConfigError
from emberlake.settings import Settings


class ResourceTransaction(Protocol):
    """Reads and writes inside one transaction."""

    def get(self, name: str) -> dict[str, Any] | None: ...

    def put(self, name: str, parent: str, collection: str, resource: dict[str, Any]) -> None:
        """Insert or replace the resource stored under ``name``."""
        ...

    def delete(self, name: str) -> None: ...

    def children(
        self, parent: str, collection: str, state_in: Collection[str] | None = None
    ) -> list[dict[str, Any]]:
        """Every resource of ``collection`` directly under ``parent``; with ``state_in``, only
        those whose ``state`` field is one of them (answered from an index)."""
        ...

    def has_children(self, parent: str) -> bool: ...

    def delete_children(self, parent: str) -> int: ...


class ResourceStore(Protocol):
    """A durable home for resources."""

    def transaction(self) -> AbstractContextManager[ResourceTransaction]: ...

    def close(self) -> None: ...


def resources_uri(settings: Settings) -> str:
    return settings.agents.resources_uri or f"sqlite:///{settings.data_path / 'resources.db'}"


def open_store(settings: Settings) -> ResourceStore:
    """The store the settings name (``agents.resources_uri``)."""
    uri = resources_uri(settings)
    scheme, sep, rest = uri.partition("://")
    if scheme == "sqlite" and sep:
        from agents.resources.sqlite import SQLiteResourceStore

        return SQLiteResourceStore(Path(rest))
    raise ConfigError(
        f"unsupported resources store {uri!r}: use sqlite:///path/to/resources.db"
        " (or leave agents.resources_uri empty for data_dir/resources.db)"
    )
