"""Topic layout and record keys: pure conventions shared by every producer and consumer.

One topic per signal. A record is one OTLP export request holding the data of one resource (one
service); its key is ``tenant/service`` so that one tenant's service stays ordered on one partition
while many services spread over all partitions. Headers carry the tenant and the signal so a
consumer need not parse the value to route it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Signal = Literal["logs", "spans", "metrics"]
SIGNALS: tuple[Signal, ...] = ("logs", "spans", "metrics")

HEADER_TENANT = "emberlake-tenant"
HEADER_SIGNAL = "emberlake-signal"
HEADER_RECEIVED_US = "emberlake-received-us"
#: A digest of tenant, signal and value: a request a client sends again (it was produced, but
#: the receiver died before acknowledging it) carries the same id, so the lake writer can store
#: it once.
HEADER_REQUEST_ID = "emberlake-request-id"


@dataclass(frozen=True)
class Topics:
    """Topic names under one prefix."""

    prefix: str = "emberlake"

    def signal(self, signal: Signal) -> str:
        return f"{self.prefix}.otlp.{signal}"

    @property
    def all_signals(self) -> list[str]:
        return [self.signal(s) for s in SIGNALS]

    @property
    def anomalies(self) -> str:
        return f"{self.prefix}.anomalies"

    def signal_of(self, topic: str) -> Signal:
        for s in SIGNALS:
            if topic == self.signal(s):
                return s
        raise ValueError(f"{topic!r} is not an emberlake signal topic")


def record_key(tenant: str, service: str) -> bytes:
    """Partitioning key: one tenant's service stays in order on one partition."""
    return f"{tenant}/{service}".encode()
