"""The built-in investigator: its method on synthetic results, and end to end over a real lake."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from agents.briefing import SYSTEM_PROMPT, first_message, investigation_context
from agents.llm.offline import OfflineInvestigator
from agents.resources.client import ResourceClient
from agents.worker import build_worker
from emberlake.cli import cli
from emberlake.settings import AgentSettings, QuerydSettings, Settings, to_env
from tests.conftest import free_port

from .incident_lake import INVESTIGATION_ID, T0, incident

INV = "tenants/acme/investigations/inv1"


def opening() -> list[dict[str, Any]]:
    context = investigation_context(
        {"name": INV, "service": "checkout", "title": "errors"},
        [{"window_start": "2026-11-20T10:00:00Z", "window_end": "2026-11-20T10:00:10Z"}],
    )
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": [{"type": "text", "text": first_message(context)}]},
    ]


def answer(messages: list[dict[str, Any]], results: dict[str, Any]) -> list[dict[str, Any]]:
    """Let the investigator speak, and reply to its calls from ``results`` by purpose."""
    turn = OfflineInvestigator().complete(messages, [])
    messages = [*messages, {"role": "assistant", "content": turn.content}]
    if turn.tool_uses:
        blocks = []
        for use in turn.tool_uses:
            purpose = use.id.split("_", 2)[-1]
            value = results.get(purpose, {"ok": True})
            blocks.append(
                {
                    "type": "tool_result",
                    "tool_use_id": use.id,
                    "content": json.dumps(value),
                    "is_error": False,
                }
            )
        messages.append({"role": "user", "content": blocks})
    return messages


def health(rate: float, error_traces: int) -> dict[str, Any]:
    return {
        "columns": ["period", "spans", "errors", "error_traces", "error_rate", "p50_ms", "p95_ms"],
        "rows": [
            ["baseline", 900, 9, 4, 0.01, 40.0, 60.0],
            ["incident", 180, 2 * error_traces, error_traces, rate, 40.0, 1500.0],
        ],
    }


def down(*rows: tuple[str, int]) -> dict[str, Any]:
    return {
        "columns": ["downstream", "error_spans", "traces", "example_message", "example_trace"],
        "rows": [[svc, n, n, f"{svc} broke", f"trace-{svc}"] for svc, n in rows],
    }


def run_offline(results: dict[str, Any], turns: int = 8) -> list[dict[str, Any]]:
    messages = opening()
    for _ in range(turns):
        messages = answer(messages, results)
        if messages[-1]["role"] == "assistant":
            break
    return messages


def calls(messages: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        b["id"].split("_", 2)[-1]: b["input"]
        for m in messages
        if m["role"] == "assistant"
        for b in m["content"]
        if b["type"] == "tool_use"
    }


def test_follows_the_top_failing_downstream_and_names_it() -> None:
    results = {
        "health_0": health(0.29, 26),
        "down_0": down(("payments", 24), ("inventory", 2)),
        "health_1": health(0.4, 24),
        "down_1": down(),
    }
    messages = run_offline(results)
    made = calls(messages)
    assert "payments" in made["health_1"]["sql"] and "payments" in made["down_1"]["sql"]
    finding = made["finding"]
    assert finding["collection"] == f"{INV}/findings" and finding["id"] == "root-cause"
    body = finding["body"]
    assert body["service"] == "payments" and body["path"] == ["checkout", "payments"]
    assert "92.3% of checkout's failing traces (24 of 26)" in body["summary"]
    assert [e["about"] for e in body["evidence"]] == [
        "downstream failures of checkout",
        "downstream failures of payments",
        "health of checkout",
        "health of payments",
    ]
    assert all("FROM spans" in e["query"] for e in body["evidence"])
    assert made["rootcause"]["body"] == {"root_cause": "payments"}
    assert made["resolve"]["body"]["state"] == "RESOLVED"
    assert messages[-1]["content"][0]["text"].startswith("Done. Root cause: payments")


def test_recurses_one_more_hop_when_that_explains_the_failures() -> None:
    results = {
        "health_0": health(0.29, 26),
        "down_0": down(("payments", 24)),
        "health_1": health(0.4, 24),
        "down_1": down(("ledger", 20)),
        "health_2": health(0.4, 20),
        "down_2": down(("checkout", 3)),  # never back upstream, and never past two hops
    }
    made = calls(run_offline(results))
    assert made["finding"]["body"]["path"] == ["checkout", "payments", "ledger"]
    assert made["finding"]["body"]["service"] == "ledger"
    assert "health_3" not in made


def test_stays_with_the_service_when_downstream_explains_little() -> None:
    results = {"health_0": health(0.3, 40), "down_0": down(("inventory", 2))}
    made = calls(run_offline(results))
    body = made["finding"]["body"]
    assert body["service"] == "checkout" and body["path"] == ["checkout"]
    assert "explain too few" in body["summary"] and "start in checkout itself" in body["summary"]


def test_same_transcript_same_answer() -> None:
    messages = opening()
    a = OfflineInvestigator().complete(messages, [])
    b = OfflineInvestigator().complete(json.loads(json.dumps(messages)), [])
    assert a == b and [u.id for u in a.tool_uses] == [
        "toolu_01_schema",
        "toolu_01_health_0",
        "toolu_01_down_0",
    ]


def test_without_context_it_ends_politely() -> None:
    turn = OfflineInvestigator().complete([{"role": "user", "content": "hi"}], [])
    assert not turn.tool_uses and "no investigation context" in turn.text


@pytest.mark.integration
@pytest.mark.parametrize("root", ["payments", "ledger"])
def test_end_to_end_offline_names_the_failing_downstream(tmp_path: Path, root: str) -> None:
    settings = Settings(data_dir=str(tmp_path / "data"), queryd=QuerydSettings(port=free_port()))
    with incident(settings, "acme", root=root) as api:
        worker = build_worker(settings)
        first = worker.run_once()
        session = f"acme/{INVESTIGATION_ID}"
        assert first.started == [session] and not first.errors
        assert first.outcomes[session].status == "waiting_approval"

        client = ResourceClient(api.url, tenant="acme")
        inv_name = f"tenants/acme/investigations/{INVESTIGATION_ID}"
        inv = client.get(inv_name)
        assert (inv["state"], inv["root_cause"], inv["session"]) == ("INVESTIGATING", root, session)
        finding = client.get(f"{inv_name}/findings/root-cause")
        assert finding["service"] == root and finding["kind"] == "root_cause"
        assert finding["path"] == ["checkout", "payments"] + (
            ["ledger"] if root == "ledger" else []
        )
        assert "failing traces (24 of 26)" in finding["summary"]
        queries = [e["query"] for e in finding["evidence"]]
        assert any("JOIN spans AS c" in q for q in queries)
        assert all(e["rows"] for e in finding["evidence"] if e["about"].startswith("health"))
        # The evidence queries are real: run again, they give the numbers in the finding.
        from queryd.client import QueryClient

        for e in finding["evidence"]:
            assert QueryClient(api.url, tenant="acme").query(e["query"])["rows"][:10] == e["rows"]

        (approval,) = client.list_all("tenants/acme/approvals", filter='state = "PENDING"')
        assert approval["investigation"] == inv_name and "RESOLVED" in approval["action"]
        assert worker.run_once().outcomes[session].advanced is False  # still waiting

        result = CliRunner().invoke(
            cli,
            ["approve", approval["name"], "--by", "oncall", "--note", "agreed"],
            env=to_env(settings),
            catch_exceptions=False,
        )
        assert result.exit_code == 0 and "APPROVED" in result.output
        final = worker.run_once().outcomes[session]
        assert final.status == "done"
        assert client.get(inv_name)["state"] == "RESOLVED"
        assert worker.run_once().outcomes == {}  # nothing left to do
        # The window the investigator looked at is the incident's.
        assert T0.strftime("%Y-%m-%d %H:%M:%S") in queries[0]


@pytest.mark.integration
def test_end_to_end_on_an_s3_session_store(tmp_path: Path, s3_server: Any) -> None:
    import uuid

    bucket = f"agents-{uuid.uuid4().hex[:10]}"
    s3_server.client().create_bucket(Bucket=bucket)
    settings = Settings(
        data_dir=str(tmp_path / "data"),
        queryd=QuerydSettings(port=free_port()),
        agents=AgentSettings(
            sessions_url=f"s3://{bucket}/sessions",
            sessions_options=f"endpoint_url={s3_server.endpoint},access_key_id=testing,"
            "secret_access_key=testing,region=us-east-1",
        ),
    )
    with incident(settings, "acme"):
        worker = build_worker(settings)
        session = f"acme/{INVESTIGATION_ID}"
        assert worker.run_once().outcomes[session].status == "waiting_approval"
    keys = [o["Key"] for o in s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]]
    assert f"sessions/sessions/{session}/slots/00000004" in keys
    assert not (tmp_path / "data" / "sessions").exists()
