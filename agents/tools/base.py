"""What a tool is to the session engine, and the toolbox a session runs with.

A tool has a spec (what the model sees), may ask for a person's approval before it acts, and
runs with a JSON input to a text result. Two kinds of failure are kept apart on purpose:

- the call was wrong (bad SQL, unknown resource, invalid input): the result says so with
  ``is_error`` and the model reads it and adapts;
- a service the tool needs is down (:class:`ToolUnavailable`): the step fails and is retried from
  the last snapshot later, so an outage never becomes part of the transcript.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from agents.llm.base import ToolSpec
from emberlake.errors import EmberlakeError, ToolUnavailable


@dataclass(frozen=True)
class ToolOutput:
    """The text a tool call produced, and whether it is an error the model should read."""

    content: str
    is_error: bool = False

    @classmethod
    def of(cls, value: Any) -> ToolOutput:
        """A JSON result: sorted keys, so the same answer always reads (and hashes) the same."""
        return cls(json.dumps(value, sort_keys=True, default=str, ensure_ascii=False))

    @classmethod
    def error(cls, message: str) -> ToolOutput:
        return cls(message, is_error=True)


class Tool(Protocol):
    """A tool a session may call."""

    @property
    def spec(self) -> ToolSpec: ...

    def needs_approval(self, arguments: Mapping[str, Any]) -> str | None:
        """Why this call must wait for a person's approval, or None if it may run now."""
        ...

    def run(self, arguments: Mapping[str, Any]) -> ToolOutput: ...


class Toolbox:
    """The tools one session runs with, by name."""

    def __init__(self, tools: Sequence[Tool]):
        self.tools = {t.spec.name: t for t in tools}

    @property
    def specs(self) -> list[ToolSpec]:
        return [t.spec for t in self.tools.values()]

    def needs_approval(self, name: str, arguments: Mapping[str, Any]) -> str | None:
        tool = self.tools.get(name)
        return tool.needs_approval(arguments) if tool is not None else None

    def run(self, name: str, arguments: Mapping[str, Any]) -> ToolOutput:
        """Run a call; errors of the call become error results, outages propagate."""
        tool = self.tools.get(name)
        if tool is None:
            return ToolOutput.error(f"no tool named {name!r}; tools: {', '.join(self.tools)}")
        try:
            return tool.run(arguments)
        except ToolUnavailable:
            raise
        except EmberlakeError as exc:
            return ToolOutput.error(f"{type(exc).__name__}: {exc}")
        except (KeyError, TypeError, ValueError) as exc:
            return ToolOutput.error(f"invalid input for {name}: {exc!r}")
