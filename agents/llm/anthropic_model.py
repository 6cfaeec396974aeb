"""Claude through the ``anthropic`` SDK's Messages API, with tool use.

Both request styles are supported: one ``messages.create`` per turn, or ``messages.stream``
(server-sent events, assembled by the SDK into the same final message). The SDK's own retries
cover transient failures; whatever still fails becomes :class:`ModelError`, and the engine retries
the step later from the last snapshot.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import anthropic

from agents.sessions.snapshots import Usage
from emberlake.errors import ModelError, ModelRejected
from emberlake.settings import Settings

from .base import AssistantTurn, ToolSpec, ToolUse, split_system


class AnthropicModel:
    """A Claude model reached through ``anthropic.Anthropic``."""

    def __init__(
        self,
        *,
        model: str,
        api_key: str | None = None,
        base_url: str | None = None,
        max_tokens: int = 2048,
        max_retries: int = 2,
        streaming: bool = False,
        timeout: float = 120.0,
    ):
        self.model = model
        self.max_tokens = max_tokens
        self.streaming = streaming
        self.client = anthropic.Anthropic(
            api_key=api_key or None,
            base_url=base_url or None,
            max_retries=max_retries,
            timeout=timeout,
            # The agent's own work is what we trace; the SDK's spans would only add noise.
            open_telemetry=False,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> AnthropicModel:
        a = settings.agents
        return cls(
            model=a.model,
            api_key=a.anthropic_api_key,
            base_url=a.anthropic_base_url,
            max_tokens=a.max_tokens,
            max_retries=a.anthropic_max_retries,
            streaming=a.anthropic_streaming,
        )

    @property
    def name(self) -> str:
        return self.model

    def complete(
        self, messages: Sequence[Mapping[str, Any]], tools: Sequence[ToolSpec]
    ) -> AssistantTurn:
        system, rest = split_system(messages)
        params: dict[str, Any] = {
            "model": self.model,
            "max_tokens": self.max_tokens,
            "messages": rest,
            "tools": [t.to_json() for t in tools],
        }
        if system:
            params["system"] = system
        try:
            if self.streaming:
                with self.client.messages.stream(**params) as stream:
                    message = stream.get_final_message()
            else:
                message = self.client.messages.create(**params)
        except anthropic.APIStatusError as exc:
            reason = f"the model API answered {exc.status_code}: {exc.message}"
            # Bad or oversized requests fail the same way every time; auth, rate limits and
            # server errors may pass later.
            if exc.status_code in (400, 404, 413, 422):
                raise ModelRejected(reason) from None
            raise ModelError(reason) from None
        except anthropic.APIError as exc:
            raise ModelError(f"the model API failed: {exc}") from None
        return _turn(message)


def _turn(message: Any) -> AssistantTurn:
    texts: list[str] = []
    uses: list[ToolUse] = []
    for block in message.content:
        if block.type == "text":
            texts.append(block.text)
        elif block.type == "tool_use":
            uses.append(ToolUse(block.id, block.name, dict(block.input or {})))
    usage = message.usage
    return AssistantTurn(
        text="\n\n".join(t for t in texts if t),
        tool_uses=tuple(uses),
        stop_reason=str(message.stop_reason or "end_turn"),
        usage=Usage(int(usage.input_tokens or 0), int(usage.output_tokens or 0)),
        model=str(message.model),
    )
