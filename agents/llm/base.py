"""What the session engine needs from a language model, whichever one runs.

A model reads the transcript (system prompt first, then alternating user and assistant messages
in the Messages API shape) and the tools it may use, and answers with one assistant turn: text,
the tool calls it wants, why it stopped, and the tokens it spent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from agents.sessions.snapshots import Usage


@dataclass(frozen=True)
class ToolSpec:
    """A tool as a model sees it: name, what it does, JSON Schema of its input."""

    name: str
    description: str
    input_schema: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "input_schema": dict(self.input_schema),
        }


@dataclass(frozen=True)
class ToolUse:
    """One tool call the model asked for."""

    id: str
    name: str
    input: Mapping[str, Any]


@dataclass(frozen=True)
class AssistantTurn:
    """One answer of a model."""

    text: str
    tool_uses: tuple[ToolUse, ...] = ()
    stop_reason: str = "end_turn"
    usage: Usage = field(default_factory=Usage)
    model: str = ""

    @property
    def content(self) -> list[dict[str, Any]]:
        """The turn as Messages API content blocks."""
        blocks: list[dict[str, Any]] = [{"type": "text", "text": self.text}] if self.text else []
        blocks += [
            {"type": "tool_use", "id": u.id, "name": u.name, "input": dict(u.input)}
            for u in self.tool_uses
        ]
        return blocks


class Model(Protocol):
    """A language model (or a stand-in) that can use tools."""

    @property
    def name(self) -> str: ...

    def complete(
        self, messages: Sequence[Mapping[str, Any]], tools: Sequence[ToolSpec]
    ) -> AssistantTurn:
        """Answer the transcript; ``messages[0]`` may be ``{"role": "system", ...}``."""
        ...


def split_system(messages: Sequence[Mapping[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """The system prompt and the remaining messages, as the Messages API takes them."""
    system = "\n\n".join(str(m["content"]) for m in messages if m["role"] == "system")
    rest = [dict(m) for m in messages if m["role"] != "system"]
    return system, rest
