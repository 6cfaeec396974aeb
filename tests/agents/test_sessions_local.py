"""The local-folder session store: blobs, write-once slots under thread and process races."""

from __future__ import annotations

import multiprocessing
from collections import Counter
from pathlib import Path

import pytest

from agents.sessions import SessionStore, open_store, system_prompt
from agents.sessions.local_store import LocalObjectStore
from emberlake.errors import CorruptObject, SessionError

from . import sessions_contract as contract


def test_blobs(tmp_path: Path) -> None:
    contract.check_blobs(LocalObjectStore(tmp_path))


def test_create_if_absent(tmp_path: Path) -> None:
    contract.check_create_if_absent(LocalObjectStore(tmp_path))


def test_thread_race_has_one_winner_per_slot(tmp_path: Path) -> None:
    contract.check_threads_race(lambda: LocalObjectStore(tmp_path))


def test_leases(tmp_path: Path) -> None:
    contract.check_leases(LocalObjectStore(tmp_path))


def test_lease_race_has_one_holder_per_session(tmp_path: Path) -> None:
    contract.check_lease_race(lambda: LocalObjectStore(tmp_path))


def _race(args: tuple[str, int]) -> list[int]:
    root, me = args
    store = LocalObjectStore(Path(root))
    return [k for k in range(40) if store.create_if_absent(f"race/{k:03d}", str(me).encode())]


def test_process_race_has_one_winner_per_slot(tmp_path: Path) -> None:
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        wins = pool.map(_race, [(str(tmp_path), i) for i in range(4)])
    per_key = Counter(k for won in wins for k in won)
    assert sorted(per_key) == list(range(40)) and set(per_key.values()) == {1}
    store = LocalObjectStore(tmp_path)
    for i, won in enumerate(wins):
        assert all(store.read(f"race/{k:03d}") == str(i).encode() for k in won)
    # No temporary files are left behind.
    assert not list(tmp_path.rglob(".tmp-*"))


def test_sessions_forks_and_refs(tmp_path: Path) -> None:
    contract.check_sessions_fork_refs(open_store(str(tmp_path)))


def test_file_url_and_bad_keys(tmp_path: Path) -> None:
    store = open_store(tmp_path.as_uri())
    assert isinstance(store, LocalObjectStore) and store.root == tmp_path.resolve()
    with pytest.raises(SessionError):
        store.read("../escape")


def test_tampered_object_is_refused(tmp_path: Path) -> None:
    sessions = SessionStore(LocalObjectStore(tmp_path))
    head = sessions.start("acme/s", [system_prompt("trust me")], contract.state())
    address = head.snapshot.objects[0].address
    blob = tmp_path / "objects" / address[:2] / address
    blob.write_bytes(blob.read_bytes().replace(b"trust me", b"trust us"))
    with pytest.raises(CorruptObject):
        SessionStore(LocalObjectStore(tmp_path)).replay(head.address)
