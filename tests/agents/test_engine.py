"""The session engine: steps as snapshot transitions, CAS races, crashes, approvals, budgets."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest

from agents.approvals import Decision
from agents.budget import Budget, UsageLedger
from agents.llm.base import ToolUse
from agents.sessions import SessionStore, transcript
from agents.sessions.local_store import LocalObjectStore
from emberlake.errors import ModelError, ModelRejected, ToolUnavailable

from .enginekit import EchoTool, MemoryDesk, ScriptedModel, engine, say, start

SCRIPT = [
    say("look", ToolUse("t1", "echo", {"q": 1}), ToolUse("t2", "echo", {"q": 2}), tokens=100),
    say("again", ToolUse("t3", "echo", {"q": 3}), tokens=100),
    say("done", tokens=100),
]


def store(tmp_path: Path, name: str = "s") -> SessionStore:
    return SessionStore(LocalObjectStore(tmp_path / name))


def test_run_to_completion_records_every_object_and_usage(tmp_path: Path) -> None:
    sessions = store(tmp_path)
    start(sessions)
    tool = EchoTool()
    out = engine(sessions, ScriptedModel(SCRIPT), [tool]).run("acme/s1")
    assert (out.status, out.seq) == ("done", 3)
    head = sessions.head("acme/s1")
    assert head.state.steps == 3
    assert head.state.usage.to_json() == {"input_tokens": 300, "output_tokens": 150}
    kinds = [o.kind for o in sessions.replay(head.address)]
    assert kinds == [
        "system",
        "user",
        "assistant",
        "tool_call",
        "tool_call",
        "tool_result",
        "tool_result",
        "assistant",
        "tool_call",
        "tool_result",
        "assistant",
    ]
    assert [r["q"] for r in tool.runs] == [1, 2, 3]
    # Every slot's parent is the slot before it.
    history = sessions.history("acme/s1")
    for (_, before), (_, after) in zip(history, history[1:], strict=False):
        assert sessions.get_snapshot(after).parent == before
    # A finished session does not move.
    assert engine(sessions, ScriptedModel(SCRIPT), [tool]).step("acme/s1").advanced is False


@pytest.mark.parametrize("backend", ["local", pytest.param("s3", marks=pytest.mark.integration)])
def test_two_concurrent_steps_leave_exactly_one_next_slot(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    if backend == "s3":
        from .test_sessions_s3 import client
        from .test_sessions_s3 import store as s3_store

        endpoint = request.getfixturevalue("s3_server").endpoint
        bucket = f"race-{uuid.uuid4().hex[:12]}"
        client(endpoint).create_bucket(Bucket=bucket)
        make = lambda: SessionStore(s3_store(endpoint, bucket))  # noqa: E731
    else:
        make = lambda: SessionStore(LocalObjectStore(tmp_path / "s"))  # noqa: E731
    start(make())
    barrier = threading.Barrier(2)
    outcomes = {}

    def worker(tag: str) -> None:
        sessions = make()
        model = ScriptedModel(SCRIPT, delay=0.3, tag=f" [{tag}]")
        ledger = UsageLedger(sessions)
        eng = engine(sessions, model, [EchoTool()], budget=Budget(ledger, 0))
        barrier.wait()
        outcomes[tag] = eng.step("acme/s1")

    threads = [threading.Thread(target=worker, args=(t,)) for t in ("A", "B")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sessions = make()
    # Both wrote one slot: one won slot 1, the other lost, retried from slot 1 and wrote slot 2.
    assert sorted(o.seq for o in outcomes.values()) == [1, 2]
    assert sorted(o.conflicts for o in outcomes.values()) == [0, 1]
    assert [seq for seq, _ in sessions.history("acme/s1")] == [0, 1, 2]
    winner = next(t for t, o in outcomes.items() if o.seq == 1)
    loser = "B" if winner == "A" else "A"
    texts = [
        o.body["text"]
        for o in sessions.replay(sessions.head("acme/s1").address)
        if o.kind == "assistant"
    ]
    # The winner's turn once, then the loser's retry; the loser's first attempt is nowhere.
    assert texts == [f"look [{winner}]", f"again [{loser}]"]
    assert sessions.get_snapshot(sessions.slot("acme/s1", 2) or "").parent == sessions.slot(
        "acme/s1", 1
    )
    # The tokens of the discarded attempt are still counted against the tenant.
    usage = UsageLedger(sessions).tenant_usage("acme")
    assert usage.sessions.input_tokens == 200 and usage.discarded.input_tokens == 100


class Crash(BaseException):
    """Stands in for the process dying in the middle of a step."""


def test_crash_anywhere_in_a_step_resumes_to_the_same_transcript(tmp_path: Path) -> None:
    clean = store(tmp_path, "clean")
    start(clean)
    engine(clean, ScriptedModel(SCRIPT), [EchoTool()]).run("acme/s1")
    reference = [d.address for d in clean.head("acme/s1").snapshot.objects]

    crashy = store(tmp_path, "crashy")
    start(crashy)
    left = {"n": 2}

    def maybe_crash() -> None:
        if left["n"] > 0:
            left["n"] -= 1
            raise Crash

    eng = engine(crashy, ScriptedModel(SCRIPT), [EchoTool(crash=maybe_crash)])
    for _ in range(2):
        with pytest.raises(Crash):
            eng.step("acme/s1")
        assert crashy.head("acme/s1").seq == 0  # nothing half-written is visible
    assert eng.run("acme/s1").status == "done"
    assert [d.address for d in crashy.head("acme/s1").snapshot.objects] == reference
    assert crashy.head("acme/s1").address == clean.head("acme/s1").address


def test_an_outage_of_a_tool_service_fails_the_step_without_recording_it(tmp_path: Path) -> None:
    sessions = store(tmp_path)
    start(sessions)

    def down() -> None:
        raise ToolUnavailable("query daemon not reachable")

    with pytest.raises(ToolUnavailable):
        engine(sessions, ScriptedModel(SCRIPT), [EchoTool(crash=down)]).step("acme/s1")
    assert sessions.head("acme/s1").seq == 0


def test_unknown_tools_and_bad_input_become_error_results(tmp_path: Path) -> None:
    sessions = store(tmp_path)
    start(sessions)
    script = [say("x", ToolUse("t1", "nope", {})), say("end")]
    engine(sessions, ScriptedModel(script), [EchoTool()]).run("acme/s1")
    result = [
        o for o in sessions.replay(sessions.head("acme/s1").address) if o.kind == "tool_result"
    ]
    assert result[0].body["is_error"] and "no tool named 'nope'" in result[0].body["content"]


def test_approval_wait_is_recorded_and_settled(tmp_path: Path) -> None:
    sessions = store(tmp_path)
    start(sessions)
    gated = ToolUse("t2", "echo", {"q": "close", "needs_approval": True})
    script = [say("act", ToolUse("t1", "echo", {"q": "free"}), gated), say("after"), say("end")]
    desk = MemoryDesk()
    tool = EchoTool()
    out = engine(sessions, ScriptedModel(script), [tool], desk=desk).run("acme/s1")
    assert out.status == "waiting_approval" and out.seq == 1
    head = sessions.head("acme/s1")
    assert [p.call_id for p in head.state.pending] == ["t2"]
    assert desk.requests == ["tenants/acme/approvals/t2"]
    assert [r["q"] for r in tool.runs] == ["free"]
    # Still pending: no new slot, however often the worker looks.
    eng = engine(sessions, ScriptedModel(script), [tool], desk=desk)
    assert eng.step("acme/s1").advanced is False
    desk.decisions["tenants/acme/approvals/t2"] = Decision("APPROVED", by="alice")
    out = eng.run("acme/s1")
    assert out.status == "done"
    assert [r["q"] for r in tool.runs] == ["free", "close"]
    messages = transcript(sessions.replay(sessions.head("acme/s1").address))
    # The approved result sits right after the call, as the Messages API requires.
    assert [b["tool_use_id"] for b in messages[3]["content"]] == ["t1", "t2"]


def test_denied_approval_is_answered_as_an_error(tmp_path: Path) -> None:
    sessions = store(tmp_path)
    start(sessions)
    script = [say("act", ToolUse("t1", "echo", {"needs_approval": True})), say("end")]
    desk = MemoryDesk()
    tool = EchoTool()
    eng = engine(sessions, ScriptedModel(script), [tool], desk=desk)
    eng.run("acme/s1")
    desk.decisions["tenants/acme/approvals/t1"] = Decision("DENIED", by="bob", note="not yet")
    assert eng.run("acme/s1").status == "done"
    results = [
        o for o in sessions.replay(sessions.head("acme/s1").address) if o.kind == "tool_result"
    ]
    assert results[0].body["is_error"] and "denied by bob: not yet" in results[0].body["content"]
    assert tool.runs == []


def test_budget_stops_the_session_cleanly(tmp_path: Path) -> None:
    sessions = store(tmp_path)
    start(sessions)
    start(sessions, "acme/other")
    ledger = UsageLedger(sessions)
    loop = [say("more", ToolUse("t", "echo", {}), tokens=100)]
    eng = engine(sessions, ScriptedModel(loop), [EchoTool()], budget=Budget(ledger, 400))
    # 150 tokens a step: the first session spends 300 in two steps, then the budget is...
    assert eng.run("acme/s1", max_cycles=2).seq == 2
    # ...spent by the second session's first step, so its second step stops it.
    out = eng.run("acme/other")
    assert out.status == "stopped" and "token budget" in out.reason
    assert ledger.tenant_usage("acme").total.total == 450
    assert sessions.head("acme/other").state.reason == out.reason
    assert eng.run("acme/s1").status == "stopped"


def test_max_steps_stops_the_session(tmp_path: Path) -> None:
    sessions = store(tmp_path)
    start(sessions)
    loop = [say("more", ToolUse("t", "echo", {}))]
    out = engine(sessions, ScriptedModel(loop), [EchoTool()], max_steps=3).run("acme/s1")
    assert (out.status, out.seq) == ("stopped", 4)
    assert "after 3 steps" in out.reason


class FailingModel:
    name = "failing"

    def __init__(self, error: Exception):
        self.error = error

    def complete(self, messages: object, tools: object) -> None:
        raise self.error


def test_a_refused_request_fails_the_session_a_transient_error_retries(tmp_path: Path) -> None:
    sessions = store(tmp_path)
    start(sessions)
    with pytest.raises(ModelError):
        engine(sessions, FailingModel(ModelError("503")), [EchoTool()]).step("acme/s1")
    assert sessions.head("acme/s1").seq == 0
    out = engine(sessions, FailingModel(ModelRejected("prompt is too long")), [EchoTool()]).run(
        "acme/s1"
    )
    assert (out.status, out.seq, out.reason) == ("failed", 1, "prompt is too long")
