"""Small doubles for engine tests: a scripted model, simple tools and an in-memory approval desk."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from agents.approvals import Decision
from agents.engine import Engine
from agents.llm.base import AssistantTurn, ToolSpec, ToolUse
from agents.sessions import SessionState, SessionStore, Usage, system_prompt, user_message
from agents.tools.base import Toolbox, ToolOutput


class ScriptedModel:
    """Answers turn i (counted from the transcript, so it is replay-safe) with script[i]."""

    def __init__(self, script: Sequence[AssistantTurn], delay: float = 0.0, tag: str = ""):
        self.script = list(script)
        self.delay = delay
        self.tag = tag
        self.calls = 0
        self.lock = threading.Lock()

    @property
    def name(self) -> str:
        return "scripted"

    def complete(
        self, messages: Sequence[Mapping[str, Any]], tools: Sequence[ToolSpec]
    ) -> AssistantTurn:
        with self.lock:
            self.calls += 1
        time.sleep(self.delay)
        turn = sum(1 for m in messages if m["role"] == "assistant")
        base = self.script[min(turn, len(self.script) - 1)]
        return AssistantTurn(
            base.text + self.tag, base.tool_uses, base.stop_reason, base.usage, "scripted"
        )


def say(text: str, *uses: ToolUse, tokens: int = 0) -> AssistantTurn:
    return AssistantTurn(
        text, tuple(uses), "tool_use" if uses else "end_turn", Usage(tokens, tokens // 2), "m"
    )


class EchoTool:
    """Returns its input; asks for approval when the input says so; can crash on demand."""

    def __init__(self, name: str = "echo", crash: Callable[[], None] | None = None):
        self.name = name
        self.crash = crash
        self.runs: list[dict[str, Any]] = []

    @property
    def spec(self) -> ToolSpec:
        return ToolSpec(self.name, "echo", {"type": "object"})

    def needs_approval(self, arguments: Mapping[str, Any]) -> str | None:
        return "it says so" if arguments.get("needs_approval") else None

    def run(self, arguments: Mapping[str, Any]) -> ToolOutput:
        if self.crash is not None:
            self.crash()
        self.runs.append(dict(arguments))
        return ToolOutput.of({"echo": dict(arguments)})


class MemoryDesk:
    """Approvals decided by the test."""

    def __init__(self) -> None:
        self.decisions: dict[str, Decision] = {}
        self.requests: list[str] = []

    def request(self, session_id: str, state: SessionState, use: ToolUse, reason: str) -> str:
        name = f"tenants/{state.tenant}/approvals/{use.id}"
        if name not in self.decisions:
            self.requests.append(name)
            self.decisions[name] = Decision("PENDING")
        return name

    def decision(self, approval: str) -> Decision:
        return self.decisions[approval]


def start(sessions: SessionStore, session_id: str = "acme/s1") -> None:
    sessions.start(
        session_id,
        [system_prompt("sys"), user_message("go")],
        SessionState(tenant="acme", subject="tenants/acme/investigations/i1"),
    )


def engine(sessions: SessionStore, model: Any, tools: Sequence[Any], **kw: Any) -> Engine:
    desk = kw.pop("desk", None) or MemoryDesk()
    return Engine(sessions, model, lambda state: Toolbox(tools), desk, **kw)


def objects_of(sessions: SessionStore, session_id: str, kind: str) -> list[Any]:
    """The objects of one kind in the session's head snapshot."""
    return [o for o in sessions.replay(sessions.head(session_id).address) if o.kind == kind]
