"""The agent worker: works every open investigation in a durable session until it is done.

Each poll it

1. lists the OPEN investigations of every tenant through the resource API and starts one session
   per investigation (``<tenant>/<investigation id>``, then ``.2``, ``.3`` if it is reopened after
   its session ended; starting is create-if-absent, so workers racing on one investigation share
   one session), then marks the investigation INVESTIGATING with a link to the session;
2. steps every session that is not finished: running ones until they finish or wait, waiting
   ones only to check whether their approval was decided.

All progress lives in the session store, so a worker killed at any moment loses at most the step
it was in, and any worker (this one restarted, or another) carries on from the last snapshot.

Several workers may run at once. Each takes a session's lease before stepping it and skips
sessions another live worker holds, so one model call is made per step; the lease is renewed on a
timer while the worker steps and released when the session finishes, waits or fails a step, and a
killed worker's leases expire after ``agents.session_lease_seconds``, except for the worker itself:
its name on leases is stable across restarts (``agents/worker_identity.py``), so restarted, it
takes its own leases back at once. The compare-and-swap on each step still keeps one transcript
whatever the leases say (see ``agents/sessions/leases.py``).
A waiting session is leased only once one of its approvals is decided.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.approvals import ResourceApprovalDesk
from agents.briefing import SYSTEM_PROMPT, first_message, investigation_context
from agents.budget import Budget, UsageLedger
from agents.engine import Engine, StepOutcome
from agents.llm import Model, model_for
from agents.resources.client import ResourceClient
from agents.sessions import (
    SessionLeases,
    SessionState,
    SessionStore,
    store_for,
    system_prompt,
    user_message,
)
from agents.tools.base import Toolbox
from agents.tools.resources import ResourcesTool
from agents.tools.sandbox import BubblewrapSandbox, Limits, scratch_root_for
from agents.tools.shell import ShellTool
from agents.tools.sql import SqlTool
from agents.worker_identity import WorkerIdentity, claim_worker_id
from emberlake.errors import EmberlakeError, EtagMismatch, SandboxUnavailable
from emberlake.settings import Settings, parse_pairs
from emberlake.tenancy import validate_tenant
from queryd.client import QueryClient

log = logging.getLogger(__name__)

#: How many of an investigation's anomalies go into the first message.
BRIEF_ANOMALIES = 20


@dataclass
class Pass:
    """What one poll did."""

    started: list[str] = field(default_factory=list)
    outcomes: dict[str, StepOutcome] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    #: Sessions left alone: leased by another worker.
    skipped: list[str] = field(default_factory=list)


class Worker:
    """Finds open investigations and runs their sessions; see the module docs."""

    def __init__(
        self,
        sessions: SessionStore,
        engine: Engine,
        resources_for: Callable[[str], ResourceClient],
        tenants: Callable[[], Iterable[str]],
        poll_seconds: float = 2.0,
        leases: SessionLeases | None = None,
        identity: WorkerIdentity | None = None,
    ):
        self.sessions = sessions
        #: The reserved name the leases are taken under; released by :meth:`close`.
        self.identity = identity
        #: None steps sessions without leases (one worker alone, or tests of the CAS itself).
        self.leases = leases
        self.engine = engine
        self.resources_for = resources_for
        self.tenants = tenants
        self.poll_seconds = poll_seconds
        # Finished sessions never change; no need to look at them again.
        self._finished: set[str] = set()

    @staticmethod
    def session_for(investigation_name: str) -> str:
        parts = investigation_name.split("/")
        return f"{parts[1]}/{parts[3]}"

    def discover(self, tenant: str) -> list[str]:
        """Start sessions for the tenant's OPEN investigations; returns the ones started."""
        client = self.resources_for(tenant)
        started = []
        for inv in client.list_all(f"tenants/{tenant}/investigations", filter='state = "OPEN"'):
            session_id = self.session_for(inv["name"])
            # Open again although its session ended (someone reopened it): a fresh look, in a
            # new session named by the same rule on every worker.
            base, n = session_id, 1
            while (
                self.sessions.exists(session_id) and self.sessions.head(session_id).state.terminal
            ):
                n += 1
                session_id = f"{base}.{n}"
            if not self.sessions.exists(session_id):
                self._start(client, session_id, inv)
                started.append(session_id)
            try:
                client.update(
                    inv["name"],
                    {"state": "INVESTIGATING", "session": session_id, "etag": inv["etag"]},
                    ["state", "session"],
                )
            except EtagMismatch:
                pass  # changed since listed (resolved, edited): look again next poll
        return started

    def _start(self, client: ResourceClient, session_id: str, inv: dict[str, Any]) -> None:
        anomalies = []
        for name in list(inv.get("anomalies") or [])[:BRIEF_ANOMALIES]:
            try:
                anomalies.append(client.get(name))
            except EmberlakeError as exc:
                log.warning("%s: cannot read anomaly %s: %s", inv["name"], name, exc)
        context = investigation_context(inv, anomalies)
        state = SessionState(tenant=session_id.split("/")[0], subject=inv["name"])
        objects = [system_prompt(SYSTEM_PROMPT), user_message(first_message(context))]
        self.sessions.start(session_id, objects, state, {"investigation": inv["name"]})
        log.info("started session %s for %s", session_id, inv["name"])

    def active(self) -> list[str]:
        """Sessions that are neither done nor stopped."""
        out = []
        for session_id in self.sessions.sessions():
            if session_id in self._finished:
                continue
            if self.sessions.head(session_id).state.terminal:
                self._finished.add(session_id)
            else:
                out.append(session_id)
        return out

    def run_once(self) -> Pass:
        """One poll: discover, then advance every active session as far as it goes."""
        done = Pass()
        for tenant in self.tenants():
            try:
                done.started += self.discover(tenant)
            except EmberlakeError as exc:
                done.errors[f"tenant {tenant}"] = str(exc)
                log.warning("cannot list investigations of %s: %s", tenant, exc)
        for session_id in self.active():
            try:
                outcome = self._advance(session_id, done)
            except EmberlakeError as exc:
                # The step left nothing behind; it runs again from the same snapshot next poll.
                done.errors[session_id] = str(exc)
                log.warning("session %s: step failed, will retry: %s", session_id, exc)
                continue
            if outcome is None:
                continue
            done.outcomes[session_id] = outcome
            if outcome.advanced:
                log.info(
                    "session %s: step %d, %s %s",
                    session_id,
                    outcome.seq,
                    outcome.status,
                    outcome.reason,
                )
        return done

    def _advance(self, session_id: str, done: Pass) -> StepOutcome | None:
        """Run the session under its lease; None if another worker holds it."""
        if self.leases is None:
            return self.engine.run(session_id)
        head = self.sessions.head(session_id)
        if not self.engine.can_advance(head):
            # Waiting on a person: nothing to do, so no lease to write.
            return StepOutcome(session_id, head.seq, head.state.status, False, 0, head.state.reason)
        lease = self.leases.acquire(session_id)
        if lease is None:
            done.skipped.append(session_id)
            return None
        with self.leases.keep(lease) as keeper:
            return self.engine.run(session_id, leased=lambda: keeper.held)

    def run_forever(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.run_once()
            except EmberlakeError as exc:
                log.warning("agent worker pass failed: %s", exc)
            stop.wait(self.poll_seconds)

    def close(self) -> None:
        """Give up the worker id (a process that exits gives it up anyway)."""
        if self.identity is not None:
            self.identity.close()


# Wiring ----------------------------------------------------------------------------------------


def tenants_of(settings: Settings) -> list[str]:
    """Tenants to look after: the default one, those with tokens, those with a lake namespace."""
    names = {settings.receiver.default_tenant, *parse_pairs(settings.receiver.tokens).values()}
    try:
        from lake.catalog import open_catalog

        names |= {ns[0] for ns in open_catalog(settings).list_namespaces() if ns}
    except Exception as exc:  # noqa: BLE001 - a missing catalog only means: no lake tenants yet
        log.debug("no lake namespaces: %s", exc)
    out = []
    for name in sorted(names):
        try:
            out.append(validate_tenant(name))
        except EmberlakeError:
            continue  # the lake's own namespace, not a tenant
    return out


def shell_sandbox(settings: Settings) -> BubblewrapSandbox | SandboxUnavailable:
    """The shell sandbox if it can be built here; else why not (the shell tool is then off)."""
    a = settings.agents
    limits = Limits(a.shell_timeout_seconds, a.shell_memory_mb, a.shell_max_processes)
    try:
        return BubblewrapSandbox.probe(limits, hidden=[settings.data_path])
    except SandboxUnavailable as exc:
        log.warning("the shell tool is disabled: %s", exc)
        return exc


def build_worker(
    settings: Settings,
    model: Model | None = None,
    sandbox: BubblewrapSandbox | SandboxUnavailable | None = None,
) -> Worker:
    """A worker wired from settings: session store, model, tools, approvals, budget."""
    from queryd.commands import daemon_url, token_for

    base_url = daemon_url(settings)
    sessions = SessionStore(store_for(settings))
    box = sandbox if sandbox is not None else shell_sandbox(settings)
    scratch_root = scratch_root_for(settings.data_path)

    def resources_for(tenant: str) -> ResourceClient:
        return ResourceClient(base_url, tenant=tenant, token=token_for(settings, tenant))

    def toolbox_for(state: SessionState) -> Toolbox:
        token = token_for(settings, state.tenant)
        timeout = settings.queryd.timeout_seconds + 10
        scratch = Path(scratch_root, state.tenant, _folder(state.subject))
        return Toolbox(
            [
                SqlTool(QueryClient(base_url, tenant=state.tenant, token=token, timeout=timeout)),
                ResourcesTool(resources_for(state.tenant), state.tenant),
                ShellTool(box, scratch),
            ]
        )

    engine = Engine(
        sessions,
        model or model_for(settings),
        toolbox_for,
        ResourceApprovalDesk(resources_for),
        Budget(UsageLedger(sessions), settings.agents.tenant_token_budget),
        max_steps=settings.agents.max_steps,
    )
    identity = claim_worker_id(settings)
    leases = SessionLeases(sessions.store, identity.id, settings.agents.session_lease_seconds)
    log.info("agent worker %s", identity.id)
    return Worker(
        sessions,
        engine,
        resources_for,
        lambda: tenants_of(settings),
        settings.agents.worker_poll_seconds,
        leases,
        identity,
    )


def _folder(subject: str) -> str:
    return hashlib.sha256(subject.encode()).hexdigest()[:16]
