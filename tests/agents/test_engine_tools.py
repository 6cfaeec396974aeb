"""The sql and resources tools against a real query daemon and resource API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from agents.resources.client import ResourceClient
from agents.tools.base import Toolbox
from agents.tools.resources import ResourcesTool
from agents.tools.sql import SqlTool
from emberlake.errors import ToolUnavailable
from emberlake.settings import QuerydSettings, Settings
from queryd.client import QueryClient
from tests.conftest import free_port

from .incident_lake import INVESTIGATION_ID, ApiServer, incident

pytestmark = pytest.mark.integration

INV = f"tenants/acme/investigations/{INVESTIGATION_ID}"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    root = tmp_path_factory.mktemp("tools")
    settings = Settings(data_dir=str(root / "data"), queryd=QuerydSettings(port=free_port()))
    with incident(settings, "acme") as server:
        yield server


def toolbox(api: ApiServer, tenant: str = "acme") -> Toolbox:
    return Toolbox(
        [
            SqlTool(QueryClient(api.url, tenant=tenant)),
            ResourcesTool(ResourceClient(api.url, tenant=tenant), tenant),
        ]
    )


def test_sql_answers_without_timings_and_describes_columns(api: ApiServer) -> None:
    box = toolbox(api)
    sql = "SELECT service_name, count(*) AS n FROM spans GROUP BY 1 ORDER BY 1"
    first, second = box.run("sql", {"sql": sql}), box.run("sql", {"sql": sql})
    assert not first.is_error and first.content == second.content  # same answer, same bytes
    result = json.loads(first.content)
    assert result["columns"] == ["service_name", "n"] and "elapsed_ms" not in result
    assert [r[0] for r in result["rows"]] == [
        "checkout",
        "frontend",
        "inventory",
        "ledger",
        "payments",
    ]
    described = json.loads(box.run("sql", {"describe": "spans"}).content)
    by_name = {c["name"]: c for c in described["columns"]}
    assert by_name["parent_span_id"]["doc"] and by_name["start_time"]["type"].startswith(
        "TIMESTAMP"
    )


def test_sql_errors_are_results_the_model_reads(api: ApiServer) -> None:
    box = toolbox(api)
    bad = box.run("sql", {"sql": "SELECT nope FROM spans"})
    assert bad.is_error and "InvalidSQL" in bad.content
    write = box.run("sql", {"sql": "DELETE FROM spans"})
    assert write.is_error and "QueryRejected" in write.content
    assert box.run("sql", {}).is_error
    assert box.run("sql", {"max_rows": 2, "sql": "SELECT * FROM spans"}).content.count("[") > 2


def test_a_daemon_outage_is_not_a_result() -> None:
    box = Toolbox([SqlTool(QueryClient(f"http://127.0.0.1:{free_port()}", tenant="acme"))])
    with pytest.raises(ToolUnavailable):
        box.run("sql", {"sql": "SELECT 1"})
    dead = ResourceClient(f"http://127.0.0.1:{free_port()}", tenant="acme")
    with pytest.raises(ToolUnavailable):
        Toolbox([ResourcesTool(dead, "acme")]).run("resources", {"method": "get", "name": INV})


def test_resources_standard_methods_relative_names_and_idempotent_create(api: ApiServer) -> None:
    box = toolbox(api)
    got = json.loads(
        box.run(
            "resources", {"method": "get", "name": f"investigations/{INVESTIGATION_ID}"}
        ).content
    )
    assert got["name"] == INV and "etag" not in got and "create_time" not in got
    listed = json.loads(
        box.run(
            "resources", {"method": "list", "collection": "anomalies", "filter": 'kind = "latency"'}
        ).content
    )
    assert [a["kind"] for a in listed["anomalies"]] == ["latency"]
    create = {
        "method": "create",
        "collection": f"investigations/{INVESTIGATION_ID}/findings",
        "id": "tool-test",
        "body": {"summary": "inventory is noisy", "service": "inventory"},
    }
    made, again = box.run("resources", create), box.run("resources", create)
    assert not made.is_error and made.content == again.content  # a retried create reads the same
    updated = box.run(
        "resources",
        {
            "method": "update",
            "name": f"{INV}/findings/tool-test",
            "body": {"detail": "2% of requests"},
        },
    )
    assert json.loads(updated.content)["detail"] == "2% of requests"
    dup = box.run("resources", {**create, "id": None})
    assert not dup.is_error  # without an id, a second resource


def test_resources_refuses_other_tenants_and_approval_writes(api: ApiServer) -> None:
    box = toolbox(api)
    other = box.run("resources", {"method": "get", "name": "tenants/zeta/investigations/x"})
    assert other.is_error and "another tenant" in other.content
    forged = box.run(
        "resources", {"method": "update", "name": "approvals/ap1", "body": {"state": "APPROVED"}}
    )
    assert forged.is_error and "decided by people" in forged.content
    assert box.run("resources", {"method": "fetch", "name": INV}).is_error


@pytest.mark.parametrize(
    ("arguments", "gated"),
    [
        (
            {
                "method": "update",
                "name": f"investigations/{INVESTIGATION_ID}",
                "body": {"state": "RESOLVED"},
            },
            True,
        ),
        ({"method": "update", "name": INV, "body": {"state": "DISMISSED"}}, True),
        ({"method": "update", "name": INV, "body": {"state": "INVESTIGATING"}}, False),
        ({"method": "update", "name": INV, "body": {"root_cause": "payments"}}, False),
        ({"method": "delete", "name": f"{INV}/findings/x"}, True),
        (
            {
                "method": "create",
                "collection": "known_issues",
                "body": {"title": "t"},
                "needs_approval": True,
            },
            True,
        ),
        (
            {
                "method": "create",
                "collection": f"{INV}/findings",
                "body": {"summary": "s", "state": "RESOLVED"},
            },
            False,
        ),
        ({"method": "get", "name": INV}, False),
    ],
)
def test_which_calls_wait_for_approval(api: ApiServer, arguments: dict, gated: bool) -> None:  # type: ignore[type-arg]
    assert (toolbox(api).needs_approval("resources", arguments) is not None) is gated


def test_tools_only_see_their_tenant(api: ApiServer, tmp_path: Path) -> None:
    box = toolbox(api, tenant="other")
    out = box.run("sql", {"sql": "SELECT count(*) FROM spans"})
    assert out.is_error
    missing = box.run("resources", {"method": "get", "name": f"investigations/{INVESTIGATION_ID}"})
    assert missing.is_error and "NotFound" in missing.content
