"""Session leases in the worker: one model call per step with several workers, fast takeover of a
dead worker's sessions, release on wait and finish, and the CAS still guarding a lost lease."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from agents.approvals import Decision
from agents.llm.base import AssistantTurn, ToolSpec, ToolUse
from agents.sessions import SessionLeases, SessionStore
from agents.sessions.local_store import LocalObjectStore
from agents.worker import Pass, Worker

from .enginekit import EchoTool, MemoryDesk, ScriptedModel, engine, say, start

SCRIPT = [
    say("look", ToolUse("t1", "echo", {"q": 1}), tokens=100),
    say("again", ToolUse("t2", "echo", {"q": 2}), tokens=100),
    say("done", tokens=100),
]
STEPS = len(SCRIPT)


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.integration)])
def make_sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], SessionStore]:
    """A factory of session stores over one real store: a local folder or the moto S3 server."""
    if request.param == "s3":
        from .test_sessions_s3 import client
        from .test_sessions_s3 import store as s3_store

        endpoint = request.getfixturevalue("s3_server").endpoint
        bucket = f"leases-{uuid.uuid4().hex[:12]}"
        client(endpoint).create_bucket(Bucket=bucket)
        return lambda: SessionStore(s3_store(endpoint, bucket))
    return lambda: SessionStore(LocalObjectStore(tmp_path / "sessions"))


def worker(
    sessions: SessionStore,
    model: Any,
    holder: str,
    seconds: float = 5.0,
    desk: MemoryDesk | None = None,
) -> Worker:
    eng = engine(sessions, model, [EchoTool()], desk=desk or MemoryDesk())
    leases = SessionLeases(sessions.store, holder, seconds)
    return Worker(sessions, eng, _no_resources, list, 0.05, leases)


def _no_resources(tenant: str) -> Any:
    raise AssertionError("these workers discover nothing")


def all_done(sessions: SessionStore, ids: Sequence[str]) -> bool:
    return all(sessions.head(s).state.terminal for s in ids)


def test_two_workers_call_the_model_once_per_step(
    make_sessions: Callable[[], SessionStore],
) -> None:
    ids = [f"acme/s{n}" for n in range(3)]
    for sid in ids:
        start(make_sessions(), sid)
    models = [ScriptedModel(SCRIPT, delay=0.15) for _ in range(2)]
    workers = [worker(make_sessions(), m, f"w{i}") for i, m in enumerate(models)]
    barrier = threading.Barrier(2)
    passes: list[list[Pass]] = [[], []]

    def run(i: int) -> None:
        barrier.wait()
        deadline = time.monotonic() + 60
        while not all_done(workers[i].sessions, ids) and time.monotonic() < deadline:
            passes[i].append(workers[i].run_once())

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sessions = make_sessions()
    assert all_done(sessions, ids)
    for sid in ids:
        head = sessions.head(sid)
        assert head.state.status == "done" and head.state.steps == STEPS
        assert [seq for seq, _ in sessions.history(sid)] == list(range(STEPS + 1))
    # One model call per step in all: nobody's work was thrown away.
    assert sum(m.calls for m in models) == STEPS * len(ids)
    assert not any(p.errors for ps in passes for p in ps)
    # They met: one of them found a session the other was stepping and left it alone.
    assert any(p.skipped for ps in passes for p in ps)
    for sid in ids:
        lease = SessionLeases(sessions.store, "reader").current(sid)
        assert lease is not None and lease.released


def test_a_dead_holders_session_is_taken_over_after_expiry(
    make_sessions: Callable[[], SessionStore],
) -> None:
    sessions = make_sessions()
    start(sessions, "acme/s1")
    # A worker takes the lease and dies: it never renews nor releases.
    dead = SessionLeases(sessions.store, "dead", seconds=1.0).acquire("acme/s1")
    assert dead is not None
    model = ScriptedModel(SCRIPT)
    alive = worker(make_sessions(), model, "alive", seconds=1.0)
    first = alive.run_once()
    assert first.skipped == ["acme/s1"] and model.calls == 0
    deadline = time.monotonic() + 20
    while "acme/s1" not in (done := alive.run_once()).outcomes:
        assert time.monotonic() < deadline, "the dead worker's session was never taken over"
        time.sleep(0.05)
    taken_after = time.time() - (dead.expires_at - 1.0)
    assert done.outcomes["acme/s1"].status == "done"
    assert 1.0 <= taken_after < 10
    assert model.calls == STEPS
    lease = alive.leases.current("acme/s1") if alive.leases else None
    assert lease is not None and lease.holder == "alive" and lease.released


def test_the_lease_is_released_on_wait_and_on_finish(
    make_sessions: Callable[[], SessionStore],
) -> None:
    script = [say("ask", ToolUse("a1", "echo", {"needs_approval": True})), say("done")]
    desk = MemoryDesk()
    sessions = make_sessions()
    start(sessions, "acme/s1")
    a = worker(make_sessions(), ScriptedModel(script), "a", desk=desk)
    b_model = ScriptedModel(script)
    b = worker(make_sessions(), b_model, "b", desk=desk)
    reader = SessionLeases(sessions.store, "reader")

    assert a.run_once().outcomes["acme/s1"].status == "waiting_approval"
    waiting = reader.current("acme/s1")
    assert waiting is not None and waiting.holder == "a" and waiting.released
    # Undecided: the other worker has nothing to do and writes no lease.
    outcome = b.run_once().outcomes["acme/s1"]
    assert (outcome.status, outcome.advanced) == ("waiting_approval", False)
    assert reader.current("acme/s1") == waiting
    # Decided: the other worker takes the released lease at once and finishes the session.
    desk.decisions[desk.requests[0]] = Decision("APPROVED", by="test")
    assert b.run_once().outcomes["acme/s1"].status == "done"
    finished = reader.current("acme/s1")
    assert finished is not None and finished.holder == "b" and finished.released
    assert b_model.calls == 1


class HookedModel(ScriptedModel):
    """Runs ``hook`` inside its first call, as if something happened while the model thought."""

    def __init__(self, script: Sequence[AssistantTurn], hook: Callable[[], None]):
        super().__init__(script)
        self.hook = hook

    def complete(
        self, messages: Sequence[Mapping[str, Any]], tools: Sequence[ToolSpec]
    ) -> AssistantTurn:
        if self.calls == 0:
            self.hook()
        return super().complete(messages, tools)


def test_a_worker_whose_lease_is_taken_mid_step_stops_after_that_step(tmp_path: Path) -> None:
    sessions = SessionStore(LocalObjectStore(tmp_path))
    start(sessions, "acme/s1")
    # Seen from a clock far ahead, the worker's lease has expired: this thief takes it over.
    thief = SessionLeases(sessions.store, "thief", 0.6, clock=lambda: time.time() + 100)

    def take_over() -> None:
        assert thief.acquire("acme/s1") is not None
        time.sleep(0.5)  # the worker's keeper tries to renew meanwhile (every 0.2 s) and fails

    model = HookedModel(SCRIPT, take_over)
    w = worker(sessions, model, "slow", seconds=0.6)
    outcome = w.run_once().outcomes["acme/s1"]
    # Its step still won the CAS (the thief has not stepped), but it asks the model no more.
    assert (outcome.seq, outcome.status, outcome.advanced) == (1, "running", True)
    assert model.calls == 1
    lease = thief.current("acme/s1")
    assert lease is not None and lease.holder == "thief" and not lease.released


def test_a_step_that_lost_its_lease_and_its_cas_discards_its_work(tmp_path: Path) -> None:
    sessions = SessionStore(LocalObjectStore(tmp_path))
    start(sessions, "acme/s1")
    rival = engine(SessionStore(LocalObjectStore(tmp_path)), ScriptedModel(SCRIPT), [EchoTool()])
    # While this step's model thinks, the new lease holder writes step 1.
    model = HookedModel(
        [say("mine", ToolUse("m1", "echo", {"q": 0}))], lambda: rival.step("acme/s1")
    )
    eng = engine(sessions, model, [EchoTool()])
    outcome = eng.step("acme/s1", leased=lambda: False)
    assert (outcome.seq, outcome.advanced, outcome.conflicts) == (1, False, 1)
    assert model.calls == 1  # not retried from the new head
    texts = [
        o.body["text"]
        for o in sessions.replay(sessions.head("acme/s1").address)
        if o.kind == "assistant"
    ]
    assert texts == ["look"]


def test_a_restarted_worker_takes_its_own_live_lease_back_at_once(
    make_sessions: Callable[[], SessionStore],
) -> None:
    sessions = make_sessions()
    start(sessions, "acme/s1")
    # The worker named "w1" took the lease and was killed: the lease stays live for 30 s.
    killed = SessionLeases(sessions.store, "w1", seconds=30.0).acquire("acme/s1")
    assert killed is not None
    other_model = ScriptedModel(SCRIPT)
    assert worker(make_sessions(), other_model, "w2", 30.0).run_once().skipped == ["acme/s1"]
    assert other_model.calls == 0
    # Restarted under the same name, it does not wait for the lease to expire.
    model = ScriptedModel(SCRIPT)
    began = time.monotonic()
    done = worker(make_sessions(), model, "w1", 30.0).run_once()
    assert done.outcomes["acme/s1"].status == "done" and time.monotonic() - began < 5
    assert model.calls == STEPS
    lease = SessionLeases(sessions.store, "reader").current("acme/s1")
    assert lease is not None and lease.holder == "w1" and lease.released
    assert lease.epoch > killed.epoch


def test_two_live_workers_with_one_name_keep_every_transcript_correct(
    make_sessions: Callable[[], SessionStore],
) -> None:
    """A configuration mistake: the leases no longer keep them apart, the slot CAS still does."""
    ids = [f"acme/s{n}" for n in range(3)]
    for sid in ids:
        start(make_sessions(), sid)
    models = [ScriptedModel(SCRIPT, delay=0.1) for _ in range(2)]
    twins = [worker(make_sessions(), m, "twin", seconds=0.3) for m in models]
    barrier = threading.Barrier(2)

    def run(i: int) -> None:
        barrier.wait()
        deadline = time.monotonic() + 60
        while not all_done(twins[i].sessions, ids) and time.monotonic() < deadline:
            twins[i].run_once()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sessions = make_sessions()
    for sid in ids:
        head = sessions.head(sid)
        assert head.state.status == "done" and head.state.steps == STEPS
        assert [seq for seq, _ in sessions.history(sid)] == list(range(STEPS + 1))
        texts = [o.body["text"] for o in sessions.replay(head.address) if o.kind == "assistant"]
        assert texts == ["look", "again", "done"]
    # Work may have been done twice, but never lost.
    assert sum(m.calls for m in models) >= STEPS * len(ids)


def test_a_twin_taking_the_lease_is_logged_as_an_error_and_stops_the_worker(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sessions = SessionStore(LocalObjectStore(tmp_path))
    start(sessions, "acme/s1")
    twin = SessionLeases(sessions.store, "same-name", 0.6)

    def twin_takes_it() -> None:
        assert twin.acquire("acme/s1") is not None  # its own name: taken at once, while live
        time.sleep(0.5)  # the worker's keeper tries to renew meanwhile and fails

    model = HookedModel(SCRIPT, twin_takes_it)
    w = worker(sessions, model, "same-name", seconds=0.6)
    with caplog.at_level("ERROR", logger="agents.sessions.leases"):
        outcome = w.run_once().outcomes["acme/s1"]
    assert (outcome.seq, outcome.advanced) == (1, True) and model.calls == 1
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any("another live worker named 'same-name'" in m for m in errors), errors
