"""Claude through the real anthropic SDK against a fake Messages API on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from agents.llm import OfflineInvestigator, model_for
from agents.llm.anthropic_model import AnthropicModel
from agents.llm.base import ToolSpec
from emberlake.errors import ModelError, ModelRejected
from emberlake.settings import AgentSettings, Settings

from .fake_anthropic import FakeMessagesAPI

TOOLS = [ToolSpec("sql", "run SQL", {"type": "object", "properties": {"sql": {"type": "string"}}})]
MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "You investigate."},
    {"role": "user", "content": [{"type": "text", "text": "why is checkout failing?"}]},
    {
        "role": "assistant",
        "content": [
            {"type": "tool_use", "id": "toolu_1", "name": "sql", "input": {"sql": "SELECT 1"}}
        ],
    },
    {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "[[1]]", "is_error": False}
        ],
    },
]
REPLY = {
    "content": [
        {"type": "text", "text": "Looking at the downstream services now."},
        {
            "type": "tool_use",
            "id": "toolu_2",
            "name": "sql",
            "input": {"sql": "SELECT 'payments' AS s", "n": [1, 2]},
        },
    ],
    "stop_reason": "tool_use",
    "usage": {"input_tokens": 321, "output_tokens": 45},
}


@pytest.fixture
def api() -> Iterator[FakeMessagesAPI]:
    fake = FakeMessagesAPI(lambda body: REPLY)
    yield fake
    fake.close()


def model(api: FakeMessagesAPI, streaming: bool) -> AnthropicModel:
    return AnthropicModel(
        model="claude-test",
        api_key="sk-test-key",
        base_url=api.base_url,
        max_retries=0,
        streaming=streaming,
    )


@pytest.mark.parametrize("streaming", [False, True])
def test_a_turn_with_tool_use_round_trips(api: FakeMessagesAPI, streaming: bool) -> None:
    turn = model(api, streaming).complete(MESSAGES, TOOLS)
    assert turn.text == "Looking at the downstream services now."
    assert [(u.id, u.name, dict(u.input)) for u in turn.tool_uses] == [
        ("toolu_2", "sql", {"sql": "SELECT 'payments' AS s", "n": [1, 2]})
    ]
    assert turn.stop_reason == "tool_use"
    assert (turn.usage.input_tokens, turn.usage.output_tokens) == (321, 45)
    assert turn.model == "claude-test"
    (request,) = api.requests
    assert request.headers["authorization"] == "Bearer sk-test-key"
    assert "x-api-key" not in request.headers
    body = request.body
    assert bool(body.get("stream")) is streaming
    assert body["system"] == "You investigate."
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][2]["content"][0]["tool_use_id"] == "toolu_1"
    assert body["tools"] == [t.to_json() for t in TOOLS]
    assert body["model"] == "claude-test" and body["max_tokens"] == 2048


@pytest.mark.parametrize(("status", "permanent"), [(500, False), (429, False), (400, True)])
def test_api_errors_become_model_errors(api: FakeMessagesAPI, status: int, permanent: bool) -> None:
    api.fail_next.append(status)
    with pytest.raises(ModelError, match=str(status)) as caught:
        model(api, False).complete(MESSAGES, TOOLS)
    assert isinstance(caught.value, ModelRejected) is permanent
    assert len(api.requests) == 1  # max_retries=0: no retry behind the test's back


def test_unreachable_api_is_a_model_error() -> None:
    from tests.conftest import free_port

    dead = AnthropicModel(
        model="m", api_key="k", base_url=f"http://127.0.0.1:{free_port()}", max_retries=0, timeout=5
    )
    with pytest.raises(ModelError):
        dead.complete(MESSAGES, TOOLS)


def test_model_for_picks_claude_only_when_configured(api: FakeMessagesAPI) -> None:
    assert isinstance(model_for(Settings()), OfflineInvestigator)
    chosen = model_for(
        Settings(agents=AgentSettings(anthropic_base_url=api.base_url, anthropic_api_key="k"))
    )
    assert isinstance(chosen, AnthropicModel) and chosen.name == "claude-sonnet-4-5"
    assert isinstance(
        model_for(Settings(agents=AgentSettings(anthropic_api_key="k"))), AnthropicModel
    )
