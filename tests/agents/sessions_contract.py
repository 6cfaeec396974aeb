"""Checks every session store backend must pass; the backend tests call these."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from agents.sessions import (
    ObjectStore,
    SessionState,
    SessionStore,
    Usage,
    assistant_message,
    system_prompt,
    user_message,
)
from emberlake.errors import NotFound, SessionError


def check_blobs(store: ObjectStore) -> None:
    address = store.put(b"hello")
    assert store.put(b"hello") == address
    assert store.get(address) == b"hello"
    with pytest.raises(SessionError):
        store.get("0" * 64)
    with pytest.raises(SessionError):
        store.get("not-an-address")


def check_create_if_absent(store: ObjectStore) -> None:
    assert store.create_if_absent("slots/a", b"first") is True
    assert store.create_if_absent("slots/a", b"second") is False
    assert store.read("slots/a") == b"first"
    assert store.read("slots/missing") is None
    store.write("refs/x", b"1")
    store.write("refs/x", b"2")
    assert store.read("refs/x") == b"2"
    assert sorted(store.list("slots/")) == ["slots/a"]


def check_threads_race(
    make_store: Callable[[], ObjectStore], writers: int = 6, keys: int = 25
) -> None:
    """Many writers race for the same keys: each key has exactly one winner, and it holds."""
    barrier = threading.Barrier(writers)

    def writer(i: int) -> list[int]:
        store = make_store()
        barrier.wait()
        return [k for k in range(keys) if store.create_if_absent(f"race/{k:03d}", f"{i}".encode())]

    with ThreadPoolExecutor(writers) as pool:
        wins = list(pool.map(writer, range(writers)))
    per_key = Counter(k for won in wins for k in won)
    assert sorted(per_key) == list(range(keys))
    assert set(per_key.values()) == {1}
    store = make_store()
    for i, won in enumerate(wins):
        for k in won:
            assert store.read(f"race/{k:03d}") == f"{i}".encode()


def state(**changes: object) -> SessionState:
    return SessionState(tenant="acme", subject="tenants/acme/investigations/i1", **changes)  # type: ignore[arg-type]


def check_sessions_fork_refs(store: ObjectStore) -> None:
    sessions = SessionStore(store)
    head = sessions.start("acme/s1", [system_prompt("sys"), user_message("go")], state())
    assert head.seq == 0
    # Starting again is harmless and returns the same head.
    assert sessions.start("acme/s1", [system_prompt("other")], state()).address == head.address
    step1 = assistant_message("one", model="m", stop_reason="end_turn", usage={"input_tokens": 3})
    snap1 = head.snapshot.extend([step1], state(steps=1, usage=Usage(3, 0)))
    sessions.put_object(step1)
    assert sessions.commit("acme/s1", 1, snap1) is True
    assert sessions.commit("acme/s1", 1, snap1) is False
    h1 = sessions.head("acme/s1")
    assert (h1.seq, h1.snapshot.parent) == (1, head.address)
    assert [o.kind for o in sessions.replay(h1.address)] == ["system", "user", "assistant"]

    # Fork from slot 0, grow it; the original does not change.
    fork = sessions.fork("acme/s1@0", "acme/s1-fork")
    assert fork.seq == 0 and fork.address == head.address
    other = assistant_message("branch", model="m", stop_reason="end_turn", usage={})
    sessions.put_object(other)
    assert sessions.commit("acme/s1-fork", 1, fork.snapshot.extend([other], state(steps=1)))
    assert sessions.head("acme/s1").address == h1.address
    assert [o.body.get("text") for o in sessions.replay(sessions.head("acme/s1-fork").address)][
        -1
    ] == "branch"
    assert sessions.meta("acme/s1-fork")["forked_from"]["snapshot"] == head.address
    with pytest.raises(SessionError):
        sessions.fork("acme/s1", "acme/s1-fork")
    with pytest.raises(SessionError):
        sessions.fork("acme/s1", "other/s1")

    # References name snapshots and move.
    sessions.set_ref("acme/good", h1.address)
    assert sessions.resolve("acme/good") == h1.address
    sessions.set_ref("acme/good", head.address)
    assert sessions.refs() == {"acme/good": head.address}
    assert sessions.resolve("acme/s1") == h1.address
    assert sessions.resolve(h1.address) == h1.address
    with pytest.raises(NotFound):
        sessions.resolve("acme/nope")
    assert sessions.sessions() == ["acme/s1", "acme/s1-fork"]
    assert sessions.sessions("acme") == ["acme/s1", "acme/s1-fork"]
    assert sessions.sessions("zeta") == []
