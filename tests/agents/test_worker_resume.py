"""SIGKILL the agent worker in the middle of steps; the resumed session reads exactly like one that
ran without interruption (offline investigator, real lake, query daemon and resource API)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from agents.resources.client import ResourceClient
from agents.sessions import SessionLeases, SessionStore, store_for
from agents.worker import build_worker
from emberlake.settings import AgentSettings, QuerydSettings, Settings
from tests.conftest import free_port

from .incident_lake import INVESTIGATION_ID, WorkerProcess, incident, wait_until

pytestmark = pytest.mark.integration

SESSION = f"acme/{INVESTIGATION_ID}"
INV = f"tenants/acme/investigations/{INVESTIGATION_ID}"


def make_settings(root: Path, lease_seconds: float = 2.0) -> Settings:
    return Settings(
        data_dir=str(root / "data"),
        queryd=QuerydSettings(port=free_port()),
        # Short leases: a second worker takes over a killed one's session soon.
        agents=AgentSettings(worker_poll_seconds=0.2, session_lease_seconds=lease_seconds),
    )


def approve(url: str) -> None:
    client = ResourceClient(url, tenant="acme")
    (approval,) = client.list_all("tenants/acme/approvals", filter='state = "PENDING"')
    client.update(
        approval["name"], {"state": "APPROVED", "decided_by": "test"}, ["state", "decided_by"]
    )


def uninterrupted(root: Path) -> tuple[str, list[str]]:
    settings = make_settings(root)
    with incident(settings, "acme") as api:
        worker = build_worker(settings)
        assert worker.run_once().outcomes[SESSION].status == "waiting_approval"
        approve(api.url)
        assert worker.run_once().outcomes[SESSION].status == "done"
        head = worker.sessions.head(SESSION)
        return head.address, [d.address for d in head.snapshot.objects]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[str]]:
    """Final snapshot address and object addresses of a session nobody interrupted."""
    return uninterrupted(tmp_path_factory.mktemp("clean"))


def test_sigkill_mid_step_then_resume_gives_the_same_transcript(
    tmp_path: Path, reference: tuple[str, list[str]]
) -> None:

    settings = make_settings(tmp_path / "crashy")
    sessions = SessionStore(store_for(settings))
    with incident(settings, "acme") as api:
        api.delay = 0.5
        worker = WorkerProcess(settings, tmp_path / "worker.log")

        def seq() -> int:
            return sessions.head(SESSION).seq if sessions.exists(SESSION) else -1

        def kill_in_step(after: int, request: tuple[str, str]) -> None:
            """Kill once slot ``after`` is written and the next step has sent ``request``."""
            wait_until(lambda: seq() >= after, 60, f"slot {after}", worker.logs)
            assert seq() == after, "the worker got past the step this kill was meant for"
            seen = len(api.requests)
            wait_until(lambda: request in api.requests[seen:], 30, f"{request}", worker.logs)
            worker.kill()
            # Killed in mid-step: nothing of that step is in the session.
            assert seq() == after

        worker.start()
        kill_in_step(0, ("POST", "/v1/query"))  # step 1, during its first query
        worker.start()
        kill_in_step(1, ("POST", "/v1/query"))  # step 2, during a query
        worker.start()
        # Step 3 creates the finding, then sets the root cause: kill after the first has happened.
        kill_in_step(2, ("PATCH", f"/v1/{INV}"))
        assert ResourceClient(api.url, tenant="acme").get(f"{INV}/findings/root-cause")
        worker.start()
        wait_until(
            lambda: sessions.head(SESSION).state.status == "waiting_approval",
            60,
            "the approval wait",
            worker.logs,
        )
        approve(api.url)
        wait_until(lambda: sessions.head(SESSION).state.terminal, 60, "the end", worker.logs)
        assert worker.stop() == 0
        head = sessions.head(SESSION)
        assert head.state.status == "done", head.state.reason
        # The retried steps duplicated nothing: one finding, one approval.
        client = ResourceClient(api.url, tenant="acme")
        assert len(list(client.list_all(f"{INV}/findings"))) == 1
        assert len(list(client.list_all("tenants/acme/approvals"))) == 1
        assert client.get(INV)["state"] == "RESOLVED"

    assert [d.address for d in head.snapshot.objects] == reference[1]
    assert head.address == reference[0]
    assert "Traceback" not in worker.logs()


def test_two_worker_processes_on_one_investigation_share_one_session(
    tmp_path: Path, reference: tuple[str, list[str]]
) -> None:
    settings = make_settings(tmp_path / "two")
    sessions = SessionStore(store_for(settings))
    with incident(settings, "acme") as api:
        api.delay = 0.05
        workers = [WorkerProcess(settings, tmp_path / f"w{i}.log").start() for i in range(2)]
        try:
            wait_until(
                lambda: (
                    sessions.exists(SESSION)
                    and sessions.head(SESSION).state.status == "waiting_approval"
                ),
                90,
                "the approval wait",
                workers[0].logs,
            )
            approve(api.url)
            wait_until(
                lambda: sessions.head(SESSION).state.terminal, 60, "the end", workers[0].logs
            )
        finally:
            codes = [w.stop() for w in workers]
        assert codes == [0, 0]
        assert sessions.head(SESSION).address == reference[0]
        assert [s for s, _ in sessions.history(SESSION)] == list(
            range(sessions.head(SESSION).seq + 1)
        )
        client = ResourceClient(api.url, tenant="acme")
        assert len(list(client.list_all("tenants/acme/approvals"))) == 1
        assert len(list(client.list_all(f"{INV}/findings"))) == 1


def test_a_restarted_worker_takes_its_session_back_without_waiting_out_the_lease(
    tmp_path: Path, reference: tuple[str, list[str]]
) -> None:
    lease_seconds = 30.0
    settings = make_settings(tmp_path / "restart", lease_seconds)
    sessions = SessionStore(store_for(settings))
    leases = SessionLeases(sessions.store, "reader")
    with incident(settings, "acme") as api:
        api.delay = 0.5
        worker = WorkerProcess(settings, tmp_path / "worker.log").start()
        wait_until(lambda: sessions.exists(SESSION), 60, "the session", worker.logs)
        seen = len(api.requests)
        wait_until(lambda: ("POST", "/v1/query") in api.requests[seen:], 30, "step 1", worker.logs)
        held = leases.current(SESSION)
        assert held is not None and held.live(time.time())
        worker.kill()  # in mid-step, holding a lease good for another ~30 s
        assert sessions.head(SESSION).seq == 0

        restarted = time.monotonic()
        worker.start()
        wait_until(lambda: sessions.head(SESSION).seq >= 1, 60, "step 1 again", worker.logs)
        took = time.monotonic() - restarted
        # Process start, one step with slowed queries: seconds, not the lease's 30.
        assert took < lease_seconds / 3, f"resumed after {took:.1f} s"
        taken = leases.current(SESSION)
        assert taken is not None and taken.holder == held.holder and taken.epoch > held.epoch

        wait_until(
            lambda: sessions.head(SESSION).state.status == "waiting_approval",
            60,
            "the approval wait",
            worker.logs,
        )
        approve(api.url)
        wait_until(lambda: sessions.head(SESSION).state.terminal, 60, "the end", worker.logs)
        assert worker.stop() == 0
    head = sessions.head(SESSION)
    assert head.state.status == "done", head.state.reason
    assert head.address == reference[0]
    assert "Traceback" not in worker.logs()
