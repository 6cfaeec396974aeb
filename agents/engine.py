"""The session engine: one step of an agent is a transition from snapshot N to snapshot N+1.

A step loads the head snapshot N, replays its objects into a transcript, runs one cycle — ask the
model, run the tools it asked for (or settle the approvals it waits for) — and writes N+1 with a
compare-and-swap. Everything before the CAS only adds content-addressed blobs, which no snapshot
refers to yet, so a step that crashes anywhere leaves the session exactly at N and is simply run
again. A step that loses the CAS (another worker wrote N+1 first) throws its work away and starts
over from the new head; the winner's transcript is the only one there is.

Workers that share a store lease a session before stepping it (``agents/sessions/leases.py``), so
normally one asks the model per step; the lease only saves that work, the CAS is still the guard.
A step whose lease was lost does not retry a lost CAS, and a run stops before its next step.

Tools must therefore tolerate running twice for the same call (the resource tool creates with
client-chosen ids, approvals are keyed by session and call). The built-in offline investigator is
deterministic, so a resumed session reads exactly like an uninterrupted one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

from agents.approvals import ApprovalDesk
from agents.budget import Budget
from agents.llm.base import AssistantTurn, Model
from agents.sessions.objects import (
    SessionObject,
    assistant_message,
    tool_call,
    tool_result,
    transcript,
)
from agents.sessions.snapshots import (
    Head,
    PendingApproval,
    SessionState,
    SessionStore,
    Status,
)
from agents.tools.base import Toolbox
from emberlake.errors import ModelRejected

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepOutcome:
    """Where a session stands after :meth:`Engine.step` or :meth:`Engine.run`."""

    session_id: str
    seq: int
    status: Status
    #: True if this call wrote a new slot.
    advanced: bool
    #: Compare-and-swap races this call lost (and retried).
    conflicts: int = 0
    reason: str = ""


@dataclass(frozen=True)
class Transition:
    """What one cycle adds to a session."""

    objects: tuple[SessionObject, ...]
    state: SessionState
    #: The model turn of this cycle, if the model was asked.
    turn: AssistantTurn | None = None


class Engine:
    """Steps sessions of one store with one model, tool set and approval desk."""

    def __init__(
        self,
        sessions: SessionStore,
        model: Model,
        toolbox_for: Callable[[SessionState], Toolbox],
        approvals: ApprovalDesk,
        budget: Budget | None = None,
        max_steps: int = 12,
        max_conflicts: int = 50,
    ):
        self.sessions = sessions
        self.model = model
        self.toolbox_for = toolbox_for
        self.approvals = approvals
        self.budget = budget
        self.max_steps = max_steps
        self.max_conflicts = max_conflicts

    # The transition ---------------------------------------------------------------------------

    def transition(self, head: Head) -> Transition | None:
        """The cycle after ``head``, or None when nothing can happen yet (or ever)."""
        state = head.state
        if state.terminal:
            return None
        toolbox = self.toolbox_for(state)
        if state.pending:
            return self._settle(head, toolbox)
        if state.steps >= self.max_steps:
            return self._stop(state, f"stopped after {state.steps} steps (agents.max_steps)")
        if self.budget is not None:
            why = self.budget.exhausted(state.tenant)
            if why:
                return self._stop(state, why)
        try:
            turn = self.model.complete(
                transcript(self.sessions.replay(head.address)), toolbox.specs
            )
        except ModelRejected as exc:
            # The same transcript would be refused again: end the session, saying why.
            return Transition((), replace(state, status="failed", reason=str(exc)))
        added: list[SessionObject] = [
            assistant_message(
                turn.text,
                model=turn.model or self.model.name,
                stop_reason=turn.stop_reason,
                usage=turn.usage.to_json(),
            )
        ]
        added += [tool_call(u.id, u.name, u.input) for u in turn.tool_uses]
        pending: list[PendingApproval] = []
        for use in turn.tool_uses:
            why = toolbox.needs_approval(use.name, use.input)
            if why:
                name = self.approvals.request(head.session_id, state, use, why)
                pending.append(PendingApproval(use.id, use.name, dict(use.input), name))
                continue
            out = toolbox.run(use.name, use.input)
            added.append(tool_result(use.id, out.content, out.is_error))
        status: Status = "running"
        reason = ""
        if not turn.tool_uses:
            status, reason = "done", f"the agent finished ({turn.stop_reason})"
        elif pending:
            status = "waiting_approval"
            reason = "waiting for approval: " + ", ".join(p.approval for p in pending)
        new_state = replace(
            state,
            status=status,
            steps=state.steps + 1,
            usage=state.usage + turn.usage,
            pending=tuple(pending),
            reason=reason,
        )
        return Transition(tuple(added), new_state, turn)

    def _settle(self, head: Head, toolbox: Toolbox) -> Transition | None:
        """Run the calls that were approved, answer the refused ones, keep waiting on the rest."""
        state = head.state
        added: list[SessionObject] = []
        waiting: list[PendingApproval] = []
        for p in state.pending:
            decision = self.approvals.decision(p.approval)
            if decision.state == "PENDING":
                waiting.append(p)
            elif decision.state == "APPROVED":
                out = toolbox.run(p.tool, p.input)
                added.append(tool_result(p.call_id, out.content, out.is_error))
            else:
                added.append(
                    tool_result(
                        p.call_id,
                        f"not done: {p.approval} was {decision.state.lower()}"
                        f" by {decision.by or 'someone'}"
                        + (f": {decision.note}" if decision.note else ""),
                        is_error=True,
                    )
                )
        if not added:
            return None
        status: Status = "waiting_approval" if waiting else "running"
        reason = ""
        if waiting:
            reason = "waiting for approval: " + ", ".join(p.approval for p in waiting)
        return Transition(
            tuple(added), replace(state, status=status, pending=tuple(waiting), reason=reason)
        )

    @staticmethod
    def _stop(state: SessionState, why: str) -> Transition:
        return Transition((), replace(state, status="stopped", reason=why))

    def can_advance(self, head: Head) -> bool:
        """False when stepping would do nothing: finished, or waiting on undecided approvals."""
        if head.state.terminal:
            return False
        if not head.state.pending:
            return True
        return any(
            self.approvals.decision(p.approval).state != "PENDING" for p in head.state.pending
        )

    # Steps -----------------------------------------------------------------------------------

    def step(self, session_id: str, leased: Callable[[], bool] | None = None) -> StepOutcome:
        """Advance the session by one cycle, retrying from the new head whenever a CAS is lost.

        ``leased`` says whether this worker still holds the session's lease; once it does not, a
        lost CAS is not retried (the new holder does the step).
        """
        conflicts = 0
        while True:
            head = self.sessions.head(session_id)
            change = self.transition(head)
            if change is None:
                return StepOutcome(
                    session_id, head.seq, head.state.status, False, conflicts, head.state.reason
                )
            for obj in change.objects:
                self.sessions.put_object(obj)
            snapshot = head.snapshot.extend(change.objects, change.state)
            if self.sessions.commit(session_id, head.seq + 1, snapshot):
                return StepOutcome(
                    session_id,
                    head.seq + 1,
                    change.state.status,
                    True,
                    conflicts,
                    change.state.reason,
                )
            conflicts += 1
            log.info("session %s: step %d was written by another worker", session_id, head.seq + 1)
            if change.turn is not None and self.budget is not None:
                spent = change.turn.usage
                self.budget.ledger.record_discarded(head.state.tenant, session_id, spent)
            if conflicts >= self.max_conflicts:
                raise RuntimeError(f"session {session_id}: lost {conflicts} races in a row")
            if leased is not None and not leased():
                head = self.sessions.head(session_id)
                return StepOutcome(
                    session_id,
                    head.seq,
                    head.state.status,
                    False,
                    conflicts,
                    "the lease was lost; its new holder steps the session",
                )

    def run(
        self,
        session_id: str,
        max_cycles: int | None = None,
        leased: Callable[[], bool] | None = None,
    ) -> StepOutcome:
        """Step until the session finishes, stops, waits on a person, or ``leased()`` is False."""
        outcome = self.step(session_id, leased)
        cycles = 1
        while outcome.advanced and outcome.status == "running":
            if max_cycles is not None and cycles >= max_cycles:
                break
            if leased is not None and not leased():
                log.info("session %s: lease lost, leaving the next step to its holder", session_id)
                break
            outcome = self.step(session_id, leased)
            cycles += 1
        return outcome
