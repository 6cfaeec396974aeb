"""Checks every session store backend must pass; the backend tests call these."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from agents.sessions import (
    ObjectStore,
    SessionLeases,
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
    store.delete("refs/x")
    store.delete("refs/x")  # deleting what is not there is fine
    assert store.read("refs/x") is None
    assert list(store.list("refs/")) == []


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


class Clock:
    """A wall clock the test moves."""

    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def check_leases(store: ObjectStore) -> None:
    """Acquire, renew, release and take over an expired lease; the chain of epochs stays short."""
    clock = Clock()
    a = SessionLeases(store, "worker-a", seconds=30, clock=clock)
    b = SessionLeases(store, "worker-b", seconds=30, clock=clock)
    sid = "acme/s1"
    assert a.current(sid) is None
    lease = a.acquire(sid)
    assert lease is not None and (lease.holder, lease.epoch) == ("worker-a", 1)
    assert b.acquire(sid) is None
    clock.now += 20
    renewed = a.renew(lease)
    assert renewed is not None and renewed.expires_at == clock.now + 30
    clock.now += 20  # past the first expiry, within the renewed one
    assert b.acquire(sid) is None
    # Released: the other takes it at once.
    assert a.release(renewed) is True
    current = b.current(sid)
    assert current is not None and current.released and not current.live(clock.now)
    taken = b.acquire(sid)
    assert taken is not None and taken.holder == "worker-b"
    # b stops renewing (it died): after its expiry a takes over, and b's late renewal loses.
    clock.now += 31
    again = a.acquire(sid)
    assert again is not None and again.holder == "worker-a"
    assert b.renew(taken) is None
    assert b.release(taken) is False
    current = a.current(sid)
    assert current is not None and current.epoch == again.epoch and current.holder == "worker-a"
    # Many renewals leave two epochs, and renewing from a long-gone epoch (which was pruned and
    # so could be created again) does not count as holding the lease.
    latest = again
    for _ in range(6):
        nxt = a.renew(latest)
        assert nxt is not None
        latest = nxt
    assert len(list(store.list(f"sessions/{sid}/lease/"))) == 2
    assert a.renew(again) is None
    current = a.current(sid)
    assert current is not None and current.epoch == latest.epoch
    assert b.acquire(sid) is None
    with pytest.raises(SessionError):
        b.renew(latest)  # not b's lease


def check_lease_race(
    make_store: Callable[[], ObjectStore], workers: int = 6, sessions: int = 8
) -> None:
    """Workers racing for free and for expired leases: one holder per session each round."""
    clock = Clock()
    barrier = threading.Barrier(workers)

    def worker(i: int) -> list[int]:
        leases = SessionLeases(make_store(), f"w{i}", seconds=10, clock=clock)
        barrier.wait()
        return [n for n in range(sessions) if leases.acquire(f"acme/s{n}") is not None]

    for _ in range(2):
        with ThreadPoolExecutor(workers) as pool:
            won = list(pool.map(worker, range(workers)))
        per_session = Counter(n for w in won for n in w)
        assert sorted(per_session) == list(range(sessions))
        assert set(per_session.values()) == {1}
        reader = SessionLeases(make_store(), "reader", clock=clock)
        for i, w in enumerate(won):
            for n in w:
                current = reader.current(f"acme/s{n}")
                assert current is not None and current.holder == f"w{i}"
        clock.now += 11  # every lease expires: the next round takes them over
