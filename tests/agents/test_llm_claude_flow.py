"""The whole investigation through Claude's API shape: the anthropic SDK talks to a fake Messages
API on 127.0.0.1 whose answers come from the investigator's method, so every tool call makes a
real tool_use / tool_result round trip through HTTP, JSON or SSE."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from agents.briefing import SYSTEM_PROMPT
from agents.llm.anthropic_model import AnthropicModel
from agents.llm.offline import OfflineInvestigator
from agents.resources.client import ResourceClient
from agents.worker import build_worker
from emberlake.cli import cli
from emberlake.settings import AgentSettings, QuerydSettings, Settings, to_env
from tests.conftest import free_port

from .fake_anthropic import FakeMessagesAPI
from .incident_lake import INVESTIGATION_ID, incident

pytestmark = pytest.mark.integration

SESSION = f"acme/{INVESTIGATION_ID}"
INV = f"tenants/acme/investigations/{INVESTIGATION_ID}"


def claude_like(body: dict[str, Any]) -> dict[str, Any]:
    """Answer as a model would, with usage that grows with the conversation."""
    messages = [{"role": "system", "content": body.get("system", "")}, *body["messages"]]
    turn = OfflineInvestigator().complete(messages, [])
    return {
        "content": turn.content or [{"type": "text", "text": "ok"}],
        "stop_reason": turn.stop_reason,
        "usage": {
            "input_tokens": len(json.dumps(body)) // 4,
            "output_tokens": len(json.dumps(turn.content)) // 4,
        },
    }


@pytest.fixture
def api() -> Iterator[FakeMessagesAPI]:
    fake = FakeMessagesAPI(claude_like)
    yield fake
    fake.close()


def make_settings(root: Path, api: FakeMessagesAPI, **agents: Any) -> Settings:
    return Settings(
        data_dir=str(root / "data"),
        queryd=QuerydSettings(port=free_port()),
        agents=AgentSettings(
            anthropic_api_key="sk-fake",
            anthropic_base_url=api.base_url,
            anthropic_max_retries=0,
            **agents,
        ),
    )


@pytest.mark.parametrize("streaming", [False, True])
def test_investigation_through_the_messages_api(
    tmp_path: Path, api: FakeMessagesAPI, streaming: bool
) -> None:
    settings = make_settings(tmp_path, api, anthropic_streaming=streaming)
    with incident(settings, "acme") as server:
        worker = build_worker(settings)
        assert isinstance(worker.engine.model, AnthropicModel)
        assert worker.run_once().outcomes[SESSION].status == "waiting_approval"
        client = ResourceClient(server.url, tenant="acme")
        finding = client.get(f"{INV}/findings/root-cause")
        assert finding["service"] == "payments"
        assert any("JOIN spans AS c" in e["query"] for e in finding["evidence"])
        (approval,) = client.list_all("tenants/acme/approvals")
        client.update(approval["name"], {"state": "APPROVED"}, ["state"])
        assert worker.run_once().outcomes[SESSION].status == "done"
        assert client.get(INV)["state"] == "RESOLVED"

    # Every request: the key as a bearer token, the system prompt, the three tools, and the
    # results of the previous turn's calls, matched by id.
    assert len(api.requests) == 5  # four turns of work, then the last word after the approval
    for i, request in enumerate(api.requests):
        body = request.body
        assert request.headers["authorization"] == "Bearer sk-fake"
        assert bool(body.get("stream")) is streaming
        assert body["system"] == SYSTEM_PROMPT
        assert [t["name"] for t in body["tools"]] == ["sql", "resources", "shell"]
        if i == 0:
            continue
        asked = [b["id"] for b in body["messages"][-2]["content"] if b["type"] == "tool_use"]
        answered = [b["tool_use_id"] for b in body["messages"][-1]["content"]]
        assert asked and answered == asked
    # Usage per step, per session, per tenant.
    sessions = worker.sessions
    objects = sessions.replay(sessions.head(SESSION).address)
    per_step = [o.body["usage"] for o in objects if o.kind == "assistant"]
    assert len(per_step) == 5 and all(u["input_tokens"] > 0 for u in per_step)
    total = sessions.head(SESSION).state.usage
    assert total.input_tokens == sum(u["input_tokens"] for u in per_step)
    assert total.output_tokens == sum(u["output_tokens"] for u in per_step)
    listed = CliRunner().invoke(cli, ["sessions", "list", "--json"], env=to_env(settings))
    usage = json.loads(listed.output)["tenant_usage"]["acme"]
    assert usage == {"input_tokens": total.input_tokens, "output_tokens": total.output_tokens}


def test_tenant_budget_stops_the_session_cleanly(tmp_path: Path, api: FakeMessagesAPI) -> None:
    settings = make_settings(tmp_path, api, tenant_token_budget=2500)
    with incident(settings, "acme") as server:
        worker = build_worker(settings)
        outcome = worker.run_once().outcomes[SESSION]
        assert outcome.status == "stopped"
        assert "spent its token budget" in outcome.reason
        head = worker.sessions.head(SESSION)
        assert head.state.reason == outcome.reason
        assert head.state.usage.total >= 2500
        calls = len(api.requests)
        assert 1 <= calls < 5
        # Stopped means stopped: later passes ask the model nothing more.
        worker.run_once()
        assert len(api.requests) == calls
        assert ResourceClient(server.url, tenant="acme").get(INV)["state"] == "INVESTIGATING"
