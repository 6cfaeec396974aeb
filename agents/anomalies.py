"""The anomaly event: what a detector publishes when a window of telemetry looks wrong.

Detectors publish one JSON object per anomaly to the ``<prefix>.anomalies`` topic (record key
``tenant/service``, header ``emberlake-tenant``); the investigation intake stores it as the
resource ``tenants/{tenant}/anomalies/{id}``. Schema (all times RFC 3339 UTC strings)::

    {
      "id":            "a3f9c0d1e2b4a5968778",  # stable: same tenant, service, kind, metric and
                                                # window start -> same id (consumers dedupe on it)
      "tenant":        "default",
      "service":       "checkout",
      "signal":        "spans" | "logs",
      "kind":          "error_rate" | "latency" | "request_rate" | "log_volume"
                       | "new_error_signature",
      "metric":        "error_rate" | "latency_p95_ms" | "requests_per_second"
                       | "logs_per_second.<SEVERITY>" | "signature.<fingerprint>",
      "window_start":  "2026-11-22T10:00:00Z",
      "window_end":    "2026-11-22T10:00:10Z",
      "observed":      0.42,              # the metric in this window
      "expected":      0.01,              # the learned baseline before this window
      "score":         17.3,              # |observed - expected| in baseline deviations
      "severity":      "medium" | "high" | "critical",
      "fingerprint":   "9b1c...",         # groups anomalies of one incident (see below)
      "summary":       "error rate 42.0% (expected 1.0%)",
      "example_trace_ids": ["4bf92f3577b34da6a3ce929d0e0e4736"],
      "example_logs":  [{"time", "severity", "trace_id", "span_id", "body"}],
      "signature":     {"type": "KeyError", "template": "missing key <str>"} | null,
      "series":        [{"window_start", "observed", "expected"}, ...],  # recent windows, oldest
                                                                         # first, for charts
      "detected_at":   "2026-11-22T10:00:21.512Z"
    }

The fingerprint names *what* is wrong independent of *when*: tenant, service, kind and metric
(for a new error signature, the signature itself). Anomalies sharing a fingerprint belong to the
same incident while its investigation is open.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

KINDS = ("error_rate", "latency", "request_rate", "log_volume", "new_error_signature")
SEVERITIES = ("medium", "high", "critical")


def _digest(*parts: str, size: int = 20) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:size]


def anomaly_id(tenant: str, service: str, kind: str, metric: str, window_start_us: int) -> str:
    """The stable id of an anomaly: a replayed window yields the same id, never a second one.

    Starts with a letter so it is a valid resource id.
    """
    return "a" + _digest(tenant, service, kind, metric, str(window_start_us), size=19)


def fingerprint(tenant: str, service: str, kind: str, metric: str) -> str:
    """What is wrong, regardless of when: the incident grouping key."""
    return _digest(tenant, service, kind, metric, size=16)


def iso_from_us(us: int) -> str:
    """RFC 3339 UTC text of a microsecond timestamp, with a Z suffix."""
    text = datetime.fromtimestamp(us / 1e6, tz=UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def us_from_iso(text: str) -> int:
    """Microseconds since the epoch of an RFC 3339 timestamp (a trailing Z is accepted)."""
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1_000_000)


@dataclass(frozen=True)
class SeriesPoint:
    """One window of the metric that fired: what was seen and what the baseline expected."""

    window_start: str
    observed: float
    expected: float | None


@dataclass(frozen=True)
class Anomaly:
    """One anomalous window of one metric of one service (see the module docs for the JSON)."""

    id: str
    tenant: str
    service: str
    signal: str
    kind: str
    metric: str
    window_start: str
    window_end: str
    observed: float
    expected: float
    score: float
    severity: str
    fingerprint: str
    summary: str
    detected_at: str
    example_trace_ids: list[str] = field(default_factory=list)
    example_logs: list[dict[str, Any]] = field(default_factory=list)
    signature: dict[str, str] | None = None
    series: list[SeriesPoint] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Anomaly:
        values = dict(data)
        values["series"] = [SeriesPoint(**p) for p in values.get("series") or []]
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in values.items() if k in known})

    @classmethod
    def from_json(cls, raw: bytes | str) -> Anomaly:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("an anomaly event is a JSON object")
        return cls.from_dict(data)
