"""Acknowledgement bookkeeping for load generators (fault tests, the soak benchmark).

A sender records each export request it makes: the ids it carried, when it was in flight and
whether the receiver acknowledged it. Counting what the lake stored against ``acked()`` is how
"nothing acknowledged lost, nothing stored twice" is checked; ``in_flight_at`` names the requests
whose fate a crash made ambiguous.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass
class SentBatch:
    """One export request: its uids, when it was in flight, and whether it was acknowledged."""

    uids: list[str]
    started: float
    ended: float = 0.0
    acked: bool = False


@dataclass
class SendLog:
    """Everything a sender sent."""

    batches: list[SentBatch] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, batch: SentBatch) -> None:
        with self.lock:
            self.batches.append(batch)

    def sent(self) -> set[str]:
        with self.lock:
            return {u for b in self.batches for u in b.uids}

    def acked(self) -> set[str]:
        with self.lock:
            return {u for b in self.batches if b.acked for u in b.uids}

    def acked_count(self) -> int:
        with self.lock:
            return sum(len(b.uids) for b in self.batches if b.acked)

    def in_flight_at(self, moments: Iterable[float]) -> set[str]:
        """Uids of requests that were in flight at any of the given moments (monotonic)."""
        points = list(moments)
        with self.lock:
            return {
                u
                for b in self.batches
                if any(b.started <= m <= (b.ended or float("inf")) for m in points)
                for u in b.uids
            }
