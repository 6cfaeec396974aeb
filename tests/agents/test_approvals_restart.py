"""Approval waits are durable: they survive worker restarts and are settled only by a person."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from agents.approvals import approval_id
from agents.resources.client import ResourceClient
from agents.sessions import SessionStore, store_for
from agents.worker import build_worker
from emberlake.cli import cli
from emberlake.settings import AgentSettings, QuerydSettings, Settings, to_env
from tests.conftest import free_port

from .incident_lake import INVESTIGATION_ID, WorkerProcess, incident, wait_until

pytestmark = pytest.mark.integration

SESSION = f"acme/{INVESTIGATION_ID}"
INV = f"tenants/acme/investigations/{INVESTIGATION_ID}"


def make_settings(root: Path) -> Settings:
    return Settings(
        data_dir=str(root / "data"),
        queryd=QuerydSettings(port=free_port()),
        agents=AgentSettings(worker_poll_seconds=0.2),
    )


def test_an_approval_wait_survives_restarts(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    sessions = SessionStore(store_for(settings))
    with incident(settings, "acme") as api:
        client = ResourceClient(api.url, tenant="acme")
        worker = WorkerProcess(settings, tmp_path / "worker.log").start()
        wait_until(
            lambda: (
                sessions.exists(SESSION)
                and sessions.head(SESSION).state.status == "waiting_approval"
            ),
            90,
            "the approval wait",
            worker.logs,
        )
        head = sessions.head(SESSION)
        (pending,) = head.state.pending
        assert pending.tool == "resources" and pending.input["body"]["state"] == "RESOLVED"
        assert pending.approval == f"tenants/acme/approvals/{approval_id(SESSION, pending.call_id)}"
        worker.kill()  # the worker dies while the session waits

        approval = client.get(pending.approval)
        assert approval["state"] == "PENDING" and approval["investigation"] == INV
        assert approval["payload"]["input"] == dict(pending.input)
        assert client.get(INV)["state"] == "INVESTIGATING"  # nothing ran without approval

        worker = WorkerProcess(settings, tmp_path / "worker2.log").start()
        # The new worker keeps waiting: no new step, no second approval, nothing resolved.
        wait_until(lambda: "working open investigations" in worker.logs(), 30, "start", worker.logs)
        time.sleep(1.5)
        assert sessions.head(SESSION).address == head.address
        assert len(list(client.list_all("tenants/acme/approvals"))) == 1
        assert client.get(INV)["state"] == "INVESTIGATING"

        result = CliRunner().invoke(
            cli,
            [
                "approve",
                approval_id(SESSION, pending.call_id),
                "--tenant",
                "acme",
                "--by",
                "alice",
                "--url",
                api.url,
            ],
            env=to_env(settings),
            catch_exceptions=False,
        )
        assert result.exit_code == 0, result.output
        wait_until(lambda: sessions.head(SESSION).state.terminal, 60, "the end", worker.logs)
        assert worker.stop() == 0
        assert client.get(INV)["state"] == "RESOLVED"
        final = sessions.replay(sessions.head(SESSION).address)
        result_obj = next(
            o for o in final if o.kind == "tool_result" and o.body["tool_use_id"] == pending.call_id
        )
        assert (
            not result_obj.body["is_error"] and '"state": "RESOLVED"' in result_obj.body["content"]
        )
        # Approving twice is refused with a clear message.
        again = CliRunner().invoke(
            cli, ["approve", pending.approval, "--url", api.url], env=to_env(settings)
        )
        assert again.exit_code != 0 and "already decided: APPROVED" in again.output


def test_a_rejected_action_does_not_run_and_the_agent_is_told(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    with incident(settings, "acme") as api:
        worker = build_worker(settings)
        assert worker.run_once().outcomes[SESSION].status == "waiting_approval"
        (pending,) = worker.sessions.head(SESSION).state.pending
        result = CliRunner().invoke(
            cli,
            [
                "approve",
                pending.approval,
                "--reject",
                "--note",
                "not fixed yet",
                "--by",
                "bob",
                "--url",
                api.url,
            ],
            env=to_env(settings),
            catch_exceptions=False,
        )
        assert result.exit_code == 0 and "REJECTED" in result.output
        assert worker.run_once().outcomes[SESSION].status == "done"
        client = ResourceClient(api.url, tenant="acme")
        assert client.get(INV)["state"] == "INVESTIGATING"
        objects = worker.sessions.replay(worker.sessions.head(SESSION).address)
        refused = next(
            o
            for o in objects
            if o.kind == "tool_result" and o.body["tool_use_id"] == pending.call_id
        )
        assert refused.body["is_error"]
        assert "was denied by bob: not fixed yet" in refused.body["content"]
        assert "stays open" in objects[-1].body["text"]
        # Reopened by a person: the next pass takes a fresh look in a new session.
        client.update(INV, {"state": "OPEN"}, ["state"])
        again = worker.run_once()
        assert again.started == [f"{SESSION}.2"]
        assert client.get(INV)["session"] == f"{SESSION}.2"
        assert again.outcomes[f"{SESSION}.2"].status == "waiting_approval"
