"""What one tumbling window of one service's telemetry adds up to (pure, JSON-serialisable).

Latency is kept in a log-bucketed histogram (buckets 5% wide), so a window holds a bounded amount
of state however many spans it sees, and percentiles are within a few percent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from agents.detection.signature import ErrorSignature
from agents.detection.telemetry import LogFact, SpanFact

_GROWTH = math.log(1.05)
_MIN_MS = 0.001
MAX_EXAMPLES = 5


@dataclass
class LatencyHistogram:
    """Counts of durations in buckets whose bounds grow by 5%."""

    buckets: dict[int, int] = field(default_factory=dict)
    count: int = 0

    def add(self, ms: float) -> None:
        index = int(math.floor(math.log(max(ms, _MIN_MS) / _MIN_MS) / _GROWTH))
        self.buckets[index] = self.buckets.get(index, 0) + 1
        self.count += 1

    def quantile(self, q: float) -> float:
        """The q-quantile (0..1) in milliseconds: the upper bound of the bucket it falls in."""
        if self.count == 0:
            return 0.0
        rank = max(1, math.ceil(q * self.count))
        seen = 0
        for index in sorted(self.buckets):
            seen += self.buckets[index]
            if seen >= rank:
                return _MIN_MS * math.exp((index + 1) * _GROWTH)
        return _MIN_MS * math.exp((max(self.buckets) + 1) * _GROWTH)

    def to_dict(self) -> dict[str, Any]:
        return {"b": {str(k): v for k, v in self.buckets.items()}, "n": self.count}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencyHistogram:
        return cls({int(k): int(v) for k, v in data["b"].items()}, int(data["n"]))


@dataclass
class SignatureCount:
    """Occurrences of one error signature in a window, with a few examples."""

    type: str
    template: str
    count: int = 0
    trace_ids: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "template": self.template,
            "count": self.count,
            "trace_ids": self.trace_ids,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SignatureCount:
        return cls(data["type"], data["template"], int(data["count"]), list(data["trace_ids"]))


@dataclass
class WindowStats:
    """Aggregates of one service's spans or logs in one window [start, start + width)."""

    start_us: int
    requests: int = 0
    errors: int = 0
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    logs: dict[str, int] = field(default_factory=dict)
    signatures: dict[str, SignatureCount] = field(default_factory=dict)
    error_trace_ids: list[str] = field(default_factory=list)
    slow_traces: list[tuple[float, str]] = field(default_factory=list)
    error_logs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """No request, log or error signature fell in this window."""
        return self.requests == 0 and not self.logs and not self.signatures

    def _signature(self, sig: ErrorSignature, trace_id: str) -> None:
        entry = self.signatures.setdefault(sig.fingerprint, SignatureCount(sig.type, sig.template))
        entry.count += 1
        if trace_id and len(entry.trace_ids) < MAX_EXAMPLES and trace_id not in entry.trace_ids:
            entry.trace_ids.append(trace_id)

    def add_span(self, fact: SpanFact) -> None:
        for sig in fact.signatures:
            self._signature(sig, fact.trace_id)
        if not fact.is_request:
            return
        self.requests += 1
        self.latency.add(fact.duration_ms)
        if fact.is_error:
            self.errors += 1
            if (
                len(self.error_trace_ids) < MAX_EXAMPLES
                and fact.trace_id not in self.error_trace_ids
            ):
                self.error_trace_ids.append(fact.trace_id)
        # Keep the slowest few as examples for a latency anomaly.
        if len(self.slow_traces) < MAX_EXAMPLES or fact.duration_ms > self.slow_traces[-1][0]:
            self.slow_traces.append((fact.duration_ms, fact.trace_id))
            self.slow_traces.sort(reverse=True)
            del self.slow_traces[MAX_EXAMPLES:]

    def add_log(self, fact: LogFact) -> None:
        self.logs[fact.severity] = self.logs.get(fact.severity, 0) + 1
        if fact.signature is not None:
            self._signature(fact.signature, fact.trace_id)
        if fact.severity in ("ERROR", "FATAL") and len(self.error_logs) < MAX_EXAMPLES:
            self.error_logs.append(
                {
                    "time_us": fact.time_us,
                    "severity": fact.severity,
                    "trace_id": fact.trace_id,
                    "span_id": fact.span_id,
                    "body": fact.body,
                }
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "start_us": self.start_us,
            "requests": self.requests,
            "errors": self.errors,
            "latency": self.latency.to_dict(),
            "logs": self.logs,
            "signatures": {k: v.to_dict() for k, v in self.signatures.items()},
            "error_trace_ids": self.error_trace_ids,
            "slow_traces": [[d, t] for d, t in self.slow_traces],
            "error_logs": self.error_logs,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WindowStats:
        return cls(
            start_us=int(data["start_us"]),
            requests=int(data["requests"]),
            errors=int(data["errors"]),
            latency=LatencyHistogram.from_dict(data["latency"]),
            logs={k: int(v) for k, v in data["logs"].items()},
            signatures={k: SignatureCount.from_dict(v) for k, v in data["signatures"].items()},
            error_trace_ids=list(data["error_trace_ids"]),
            slow_traces=[(float(d), str(t)) for d, t in data["slow_traces"]],
            error_logs=list(data["error_logs"]),
        )
