"""Model tokens spent per tenant, and the budget that stops a tenant's sessions when spent.

Usage lives where the work is recorded: each assistant message carries the tokens of its turn,
each snapshot the session's running total. A tenant's spend is the sum over its sessions of what
each added after its slot 0 (a fork starts with its source's total, which the source already
counts), plus the turns of steps that lost their compare-and-swap: their tokens were spent even
though their work was discarded, so the engine records them under ``usage/<tenant>/discarded/``.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

from agents.sessions.snapshots import SessionStore, Usage


@dataclass(frozen=True)
class TenantUsage:
    """One tenant's spend, split by where it was recorded."""

    sessions: Usage
    discarded: Usage

    @property
    def total(self) -> Usage:
        return self.sessions + self.discarded


class UsageLedger:
    """Reads and sums token usage from a session store."""

    def __init__(self, sessions: SessionStore):
        self.sessions = sessions
        # A finished session's usage never changes again.
        self._final: dict[str, Usage] = {}

    def session_usage(self, session_id: str) -> Usage:
        """Tokens this session spent itself (excluding what a fork inherited)."""
        if session_id in self._final:
            return self._final[session_id]
        head = self.sessions.head(session_id)
        first = head.snapshot if head.seq == 0 else self.sessions.load(session_id, 0).snapshot
        spent = head.state.usage - first.state.usage
        if head.state.terminal:
            self._final[session_id] = spent
        return spent

    def record_discarded(self, tenant: str, session_id: str, usage: Usage) -> None:
        if usage.total == 0:
            return
        entry = {"session": session_id, **usage.to_json()}
        self.sessions.store.create_if_absent(
            f"usage/{tenant}/discarded/{uuid.uuid4().hex}", json.dumps(entry).encode()
        )

    def tenant_usage(self, tenant: str) -> TenantUsage:
        total = Usage()
        for session_id in self.sessions.sessions(tenant):
            total = total + self.session_usage(session_id)
        discarded = Usage()
        for key in self.sessions.store.list(f"usage/{tenant}/discarded/"):
            raw = self.sessions.store.read(key)
            if raw:
                discarded = discarded + Usage.from_json(json.loads(raw))
        return TenantUsage(total, discarded)


@dataclass(frozen=True)
class Budget:
    """At most ``limit`` tokens per tenant (0 or less: no limit)."""

    ledger: UsageLedger
    limit: int

    def exhausted(self, tenant: str) -> str | None:
        """Why the tenant may not spend more, or None while it may."""
        if self.limit <= 0:
            return None
        spent = self.ledger.tenant_usage(tenant).total.total
        if spent >= self.limit:
            return (
                f"tenant {tenant!r} has spent its token budget ({spent} of {self.limit} tokens);"
                " raise agents.tenant_token_budget to continue"
            )
        return None
