"""The built-in investigator: its method on synthetic results, and end to end over a real lake."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from agents.briefing import SYSTEM_PROMPT, first_message, investigation_context
from agents.llm.offline import OfflineInvestigator
from agents.llm.playbook import peers_filter
from agents.resources.client import ResourceClient
from agents.resources.filtering import parse_filter
from agents.resources.schema import COLLECTIONS
from agents.tools.base import Toolbox, ToolOutput
from agents.worker import build_worker
from emberlake.cli import cli
from emberlake.errors import ToolUnavailable
from emberlake.settings import AgentSettings, QuerydSettings, Settings, to_env
from tests.conftest import free_port

from .enginekit import objects_of
from .incident_lake import INVESTIGATION_ID, T0, incident, open_investigation

INV = "tenants/acme/investigations/inv1"


WINDOW = {"window_start": "2026-11-20T10:00:00Z", "window_end": "2026-11-20T10:00:10Z"}


def opening(anomalies: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    context = investigation_context(
        {"name": INV, "service": "checkout", "title": "errors"}, anomalies or [WINDOW]
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


def run_offline(
    results: dict[str, Any], turns: int = 8, anomalies: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    messages = opening(anomalies)
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
    # Its own service is the root cause: no other investigation to link to.
    assert "peers" not in made and "caused_by" not in made


def quiet(incident_spans: int) -> dict[str, Any]:
    """Health of a service with no failures: 900 baseline spans over 5 minutes."""
    return {
        "columns": ["period", "spans", "errors", "error_traces", "error_rate", "p50_ms", "p95_ms"],
        "rows": [
            ["baseline", 900, 0, 0, 0.0, 40.0, 60.0],
            *([["incident", incident_spans, 0, 0, 0.0, 40.0, 60.0]] if incident_spans else []),
        ],
    }


DROP = {**WINDOW, "kind": "request_rate", "observed": 0.0, "expected": 3.0}


def test_a_service_that_lost_its_traffic_is_told_apart_from_one_that_fails() -> None:
    made = calls(run_offline({"health_0": quiet(0), "down_0": down()}, anomalies=[DROP]))
    body = made["finding"]["body"]
    assert body["kind"] == "traffic_drop" and body["service"] == "checkout"
    assert body["summary"].startswith("Root cause: checkout lost its traffic.")
    # 900 spans over 5 minutes predict 180 in the one-minute incident window.
    assert "0 spans in the incident window against about 180 expected" in body["summary"]
    assert "start in checkout itself" not in body["summary"]


@pytest.mark.parametrize(
    ("incident_spans", "anomalies"),
    [
        (150, [DROP]),  # most of the expected traffic is there: not a drop
        (0, [WINDOW]),  # the detectors reported no request-rate drop
        (0, [{**DROP, "observed": 9.0}]),  # a rise, not a drop
    ],
)
def test_no_traffic_drop_without_the_evidence_for_one(
    incident_spans: int, anomalies: list[dict[str, Any]]
) -> None:
    made = calls(run_offline({"health_0": quiet(incident_spans), "down_0": down()}, 8, anomalies))
    assert made["finding"]["body"]["kind"] == "root_cause"


PAYMENTS = "tenants/acme/investigations/pay1"


def peer(name: str, first: str, last: str | None = None, state: str = "INVESTIGATING") -> dict:
    return {
        "name": name,
        "service": "payments",
        "state": state,
        "first_anomaly_time": first,
        "last_anomaly_time": last or first,
    }


def chain_to_payments(peers: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "health_0": health(0.29, 26),
        "down_0": down(("payments", 24)),
        "health_1": health(0.4, 24),
        "down_1": down(),
        "peers": {"investigations": peers, "next_page_token": "", "total_size": len(peers)},
    }


def test_links_to_the_investigation_of_the_root_cause_over_the_same_time() -> None:
    # The incident window is 10:00:00 to 10:01:00 (a 10 s anomaly, widened to a minute).
    results = chain_to_payments(
        [
            peer("tenants/acme/investigations/old", "2026-11-20T09:00:00Z", "2026-11-20T09:10:00Z"),
            peer("tenants/acme/investigations/done", "2026-11-20T10:00:00Z", state="RESOLVED"),
            # Started 10 s before checkout's anomaly: payments failed first.
            peer(PAYMENTS, "2026-11-20T09:59:50Z"),
            peer("tenants/acme/investigations/late", "2026-11-20T10:00:55Z"),
        ]
    )
    messages = run_offline(results)
    made = calls(messages)
    assert made["peers"]["method"] == "list" and made["peers"]["collection"] == "investigations"
    assert made["peers"]["filter"].startswith('service = "payments" AND (state = "OPEN"')
    assert made["caused_by"] == {
        "method": "update",
        "name": INV,
        "body": {"caused_by": PAYMENTS},
        "update_mask": ["caused_by"],
    }
    assert made["related"] == {
        "method": "update",
        "name": PAYMENTS,
        "body": {"related": {INV: {"service": "checkout", "relation": "symptom"}}},
        "update_mask": [f"related.{INV}"],
    }
    assert f"investigated in {PAYMENTS}" in made["resolve"]["body"]["resolution"]
    assert f"Linked to {PAYMENTS}" in messages[-1]["content"][0]["text"]
    # Looking up, linking and resolving are separate turns, in that order.
    order = [
        b["id"].split("_", 2)[-1]
        for m in messages
        if m["role"] == "assistant"
        for b in m["content"]
        if b["type"] == "tool_use"
    ]
    assert order.index("peers") < order.index("caused_by") < order.index("resolve")


def test_no_link_when_the_root_cause_has_no_investigation_at_that_time() -> None:
    results = chain_to_payments(
        [peer("tenants/acme/investigations/old", "2026-11-20T09:00:00Z", "2026-11-20T09:58:00Z")]
    )
    messages = run_offline(results)
    made = calls(messages)
    assert "peers" in made and "caused_by" not in made and "related" not in made
    assert made["resolve"]["body"]["resolution"].startswith("Root cause: payments; see")
    assert "Linked" not in messages[-1]["content"][0]["text"]


def test_a_failed_link_is_said_and_not_claimed() -> None:
    results = chain_to_payments([peer(PAYMENTS, "2026-11-20T10:00:00Z")])
    messages = opening()
    for _ in range(8):
        messages = answer(messages, results)
        last = messages[-1]
        if last["role"] == "assistant":
            break
        for block in last["content"]:
            if block["tool_use_id"].endswith("_related"):
                block["content"], block["is_error"] = "NotFound: pay1 does not exist", True
    made = calls(messages)
    assert "investigated in" not in made["resolve"]["body"]["resolution"]
    assert f"Linking to {PAYMENTS} failed: NotFound" in messages[-1]["content"][0]["text"]


def test_the_peers_filter_holds_for_any_service_name() -> None:
    odd = 'pay"me\\nts'
    matches = parse_filter(peers_filter(odd), COLLECTIONS["investigations"])
    assert matches({"service": odd, "state": "OPEN"})
    assert matches({"service": odd, "state": "INVESTIGATING"})
    assert not matches({"service": odd, "state": "RESOLVED"})
    assert not matches({"service": "payments", "state": "OPEN"})


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


class CrashAfterRelated:
    """The resources tool, but the worker "dies" right after the first link to ``related`` was
    written: the step is lost and runs again from the last snapshot."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.related_runs = 0

    @property
    def spec(self) -> Any:
        return self.inner.spec

    def needs_approval(self, arguments: Any) -> str | None:
        return self.inner.needs_approval(arguments)  # type: ignore[no-any-return]

    def run(self, arguments: Any) -> ToolOutput:
        out: ToolOutput = self.inner.run(arguments)
        if any(str(p).startswith("related.") for p in arguments.get("update_mask") or []):
            self.related_runs += 1
            if self.related_runs == 1:
                raise ToolUnavailable("the worker died after writing the link")
        return out


@pytest.mark.integration
def test_one_incident_two_investigations_linked_once_across_a_replay(tmp_path: Path) -> None:
    """checkout fails because payments fails under it; both have an investigation. The checkout
    investigation is caused by the payments one, which lists it; a step replayed after a crash
    adds nothing twice, and a link another investigation wrote meanwhile is kept."""
    settings = Settings(data_dir=str(tmp_path / "data"), queryd=QuerydSettings(port=free_port()))
    with incident(settings, "acme", root="payments") as api:
        payments = open_investigation(api.url, "acme", "payments", "payments-errors")
        checkout = f"tenants/acme/investigations/{INVESTIGATION_ID}"
        frontend = "tenants/acme/investigations/frontend-errors"
        worker = build_worker(settings)
        crashing: list[CrashAfterRelated] = []
        toolbox_for = worker.engine.toolbox_for

        def with_crash(state: Any) -> Toolbox:
            box = toolbox_for(state)
            if not crashing:
                crashing.append(CrashAfterRelated(box.tools["resources"]))
            box.tools["resources"] = crashing[0]
            return box

        worker.engine.toolbox_for = with_crash
        first = worker.run_once()
        session = f"acme/{INVESTIGATION_ID}"
        assert "died" in first.errors[session]
        client = ResourceClient(api.url, tenant="acme")
        assert client.get(payments)["related"] == {
            checkout: {"service": "checkout", "relation": "symptom"}
        }
        # Meanwhile the frontend investigation links itself to payments too.
        client.update(
            payments,
            {"related": {frontend: {"service": "frontend", "relation": "symptom"}}},
            [f"related.{frontend}"],
        )

        second = worker.run_once()
        assert not second.errors and second.outcomes[session].status == "waiting_approval"
        assert crashing[0].related_runs == 2  # the lost step really ran again

        a, b = client.get(checkout), client.get(payments)
        assert (a["root_cause"], a["caused_by"]) == ("payments", payments)
        assert b["related"] == {
            checkout: {"service": "checkout", "relation": "symptom"},
            frontend: {"service": "frontend", "relation": "symptom"},
        }
        # payments' own investigation finds the fault in payments itself, and links nowhere.
        assert b["root_cause"] == "payments" and "caused_by" not in b
        # Both fields are filterable.
        by_cause = client.list_all("tenants/acme/investigations", f'caused_by = "{payments}"')
        assert [i["name"] for i in by_cause] == [checkout]
        listing = client.list_all("tenants/acme/investigations", f'related:"{checkout}"')
        assert [i["name"] for i in listing] == [payments]
        # The transcript holds the link once: the lost attempt left nothing behind.
        ids = [o.body["id"] for o in objects_of(worker.sessions, session, "tool_call")]
        assert sum(i.endswith("_caused_by") for i in ids) == 1
        assert sum(i.endswith("_related") for i in ids) == 1
        (approval,) = client.list_all(
            "tenants/acme/approvals", f'investigation = "{checkout}" AND state = "PENDING"'
        )
        assert f"investigated in {payments}" in json.dumps(approval["payload"])

        # The page tells it as one story: checkout inside payments, with the finding's queries.
        request = urllib.request.Request(f"{api.url}/ui", headers={"x-emberlake-tenant": "acme"})
        with urllib.request.urlopen(request, timeout=30) as response:
            page = response.read().decode()
        assert page.count('<section class="incident">') == 1
        outer, inner = page.index(f'id="{payments}"'), page.index(f'id="{checkout}"')
        assert outer < page.index('class="effects"') < inner
        assert "One incident, 2 investigations; root cause <b>payments</b>" in page
        assert f'Caused by <a href="#{payments}">' in page
        assert "JOIN spans AS c ON c.trace_id = p.trace_id" in page
        assert "c.service_name &lt;&gt; &#x27;checkout&#x27;" in page
        assert "failing traces (24 of 26)" in page
