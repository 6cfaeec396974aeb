"""Durable waits for a person's approval before an agent acts outside the lake.

When a tool call needs approval (resolving an investigation, deleting, anything the model marks
``needs_approval``), the engine creates an approval resource and writes a snapshot whose state
lists the pending call and the approval's name. Nothing else holds the wait: after any restart the
worker finds the session waiting, asks the resource API for the decision, and runs the call only
once the approval says APPROVED (a DENIED one is answered to the model as an error result).

Approval ids are derived from the session and the tool call id, so a step retried after a crash
finds the approval it created before instead of opening a second one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from agents.llm.base import ToolUse
from agents.sessions.snapshots import SessionState
from emberlake.errors import AlreadyExists

DecisionState = Literal["PENDING", "APPROVED", "DENIED"]


@dataclass(frozen=True)
class Decision:
    """Where an approval stands."""

    state: DecisionState
    by: str = ""
    note: str = ""


class ApprovalDesk(Protocol):
    """Where approvals are asked for and decided."""

    def request(self, session_id: str, state: SessionState, use: ToolUse, reason: str) -> str:
        """Ask for approval of a call (idempotently); returns the approval's resource name."""
        ...

    def decision(self, approval: str) -> Decision: ...


def approval_id(session_id: str, call_id: str) -> str:
    """The same session and call always map to the same approval (a letter first, as ids need)."""
    return "ap" + hashlib.sha256(f"{session_id}\x1f{call_id}".encode()).hexdigest()[:20]


class ResourceLike(Protocol):
    """The part of the resource client the desk uses."""

    def get(self, name: str) -> dict[str, Any]: ...

    def create(
        self, collection: str, body: dict[str, Any], resource_id: str | None = None
    ) -> dict[str, Any]: ...


class ResourceApprovalDesk:
    """Approvals as resources ``tenants/{t}/approvals/{id}`` of the resource API.

    The approval carries what would run (``payload``: session, call id, tool and input) and why;
    a person sets ``state`` to APPROVED or REJECTED (``emberlake approve``).
    """

    def __init__(self, client_for: Callable[[str], ResourceLike]):
        #: tenant -> resource client acting for that tenant.
        self.client_for = client_for

    def request(self, session_id: str, state: SessionState, use: ToolUse, reason: str) -> str:
        client = self.client_for(state.tenant)
        body: dict[str, Any] = {
            "action": f"{use.name} {summarize(use.input)}",
            "reason": reason,
            "requested_by": f"agent session {session_id}",
            "payload": {
                "session": session_id,
                "call_id": use.id,
                "tool": use.name,
                "input": dict(use.input),
            },
        }
        if "/investigations/" in state.subject:
            body["investigation"] = state.subject
        rid = approval_id(session_id, use.id)
        try:
            created = client.create(f"tenants/{state.tenant}/approvals", body, resource_id=rid)
        except AlreadyExists:
            # A step retried after a crash: the approval it asked for is already there.
            created = client.get(f"tenants/{state.tenant}/approvals/{rid}")
        return str(created["name"])

    def decision(self, approval: str) -> Decision:
        tenant = approval.split("/")[1]
        resource = self.client_for(tenant).get(approval)
        raw = str(resource.get("state", "PENDING")).upper()
        state: DecisionState = (
            "APPROVED" if raw == "APPROVED" else "DENIED" if raw == "REJECTED" else "PENDING"
        )
        return Decision(
            state, by=str(resource.get("decided_by") or ""), note=str(resource.get("note") or "")
        )


def summarize(arguments: Mapping[str, Any], limit: int = 300) -> str:
    text = json.dumps(dict(arguments), sort_keys=True, default=str)
    return text if len(text) <= limit else text[:limit] + "..."
