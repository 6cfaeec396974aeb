"""The offline investigator's queries and how it reads their answers (pure functions).

The method is what an on-call engineer does with traces:

1. *Health*: the service's spans, errors, error rate and latency percentiles in the incident
   window against a longer baseline window just before it.
2. *Downstream*: for the service's failing spans in the window, the child spans (same trace,
   ``parent_span_id`` = the failing span) that belong to other services and failed too, ranked by
   how many there are. A service whose errors come from a dependency has failing children there.
3. Follow the top downstream service while it explains a good share of the failing traces, at
   most :data:`MAX_HOPS` hops, then name the last service reached as the root cause.
4. *Link*: when the root cause is another service and an active investigation of that service
   covers the same time, the two are one incident: this investigation is ``caused_by`` that one,
   and that one lists this one under ``related`` (see :func:`link_calls`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agents.briefing import iso, parse_time
from agents.resources.schema import ACTIVE_INVESTIGATION_STATES

#: How far downstream the investigator follows failures (A -> B -> C).
MAX_HOPS = 2
#: How another investigation names its relation to the one caused by it.
SYMPTOM = "symptom"
#: Share of a service's failing traces a downstream service must fail in to be followed.
FOLLOW_SHARE = 0.3
MIN_INCIDENT = dt.timedelta(seconds=60)
MIN_BASELINE = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class Window:
    """The incident window and the baseline window before it."""

    start: dt.datetime
    end: dt.datetime
    baseline_start: dt.datetime

    @classmethod
    def of(cls, context: Mapping[str, Any], now: dt.datetime | None = None) -> Window:
        if context.get("window_start"):
            start = parse_time(context["window_start"])
        else:
            start = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(minutes=15)
        end = parse_time(context["window_end"]) if context.get("window_end") else start
        # A detector window can be seconds long; a minute of data says more.
        end = max(end, start + MIN_INCIDENT)
        baseline = max(3 * (end - start), MIN_BASELINE)
        return cls(start, end, start - baseline)


def quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def health_sql(service: str, w: Window) -> str:
    return f"""SELECT CASE WHEN start_time >= TIMESTAMPTZ '{iso(w.start)}'
            THEN 'incident' ELSE 'baseline' END AS period,
       count(*) AS spans,
       count(*) FILTER (WHERE status_code = 'ERROR') AS errors,
       count(DISTINCT trace_id) FILTER (WHERE status_code = 'ERROR') AS error_traces,
       round(count(*) FILTER (WHERE status_code = 'ERROR') / count(*), 4) AS error_rate,
       round(quantile_cont(duration_ms, 0.5), 1) AS p50_ms,
       round(quantile_cont(duration_ms, 0.95), 1) AS p95_ms
FROM spans
WHERE service_name = {quote(service)}
  AND start_time >= TIMESTAMPTZ '{iso(w.baseline_start)}'
  AND start_time < TIMESTAMPTZ '{iso(w.end)}'
GROUP BY period
ORDER BY period"""


def downstream_sql(service: str, w: Window) -> str:
    return f"""SELECT c.service_name AS downstream,
       count(*) AS error_spans,
       count(DISTINCT c.trace_id) AS traces,
       min(c.status_message) AS example_message,
       min(c.trace_id) AS example_trace
FROM spans AS p
JOIN spans AS c ON c.trace_id = p.trace_id AND c.parent_span_id = p.span_id
WHERE p.service_name = {quote(service)}
  AND p.status_code = 'ERROR'
  AND c.service_name <> {quote(service)}
  AND c.status_code = 'ERROR'
  AND p.start_time >= TIMESTAMPTZ '{iso(w.start)}'
  AND p.start_time < TIMESTAMPTZ '{iso(w.end)}'
GROUP BY c.service_name
ORDER BY error_spans DESC, downstream
LIMIT 10"""


@dataclass(frozen=True)
class Health:
    """A service's incident window against its baseline."""

    service: str
    spans: int = 0
    errors: int = 0
    error_traces: int = 0
    error_rate: float = 0.0
    p95_ms: float | None = None
    baseline_spans: int = 0
    baseline_error_rate: float = 0.0
    baseline_p95_ms: float | None = None

    def describe(self) -> str:
        text = (
            f"{self.service}: error rate {pct(self.error_rate)} in the incident window"
            f" ({self.errors} of {self.spans} spans) against {pct(self.baseline_error_rate)}"
            f" in the baseline ({self.baseline_spans} spans)"
        )
        if self.p95_ms is not None and self.baseline_p95_ms is not None:
            text += f"; p95 latency {self.p95_ms:g} ms against {self.baseline_p95_ms:g} ms"
        return text


@dataclass(frozen=True)
class Downstream:
    """A service that failed under another's failing spans."""

    service: str
    error_spans: int
    traces: int
    example_message: str | None
    example_trace: str | None


def traffic_drop(context: Mapping[str, Any], health: Health, w: Window) -> str | None:
    """A sentence on a service whose traffic fell rather than failed, or None.

    Said only when the detectors reported a request-rate drop, no span of the incident window
    failed, and the window holds under half the spans its baseline rate predicts.
    """
    dropped = any(
        isinstance(a, Mapping)
        and a.get("kind") == "request_rate"
        and (_float(a.get("observed")) or 0.0) < (_float(a.get("expected")) or 0.0)
        for a in context.get("anomalies") or ()
    )
    baseline_seconds = (w.start - w.baseline_start).total_seconds()
    if not dropped or health.errors or baseline_seconds <= 0:
        return None
    expected = health.baseline_spans * (w.end - w.start).total_seconds() / baseline_seconds
    if expected < 1 or health.spans >= 0.5 * expected:
        return None
    return (
        f"{health.service} received {health.spans} spans in the incident window against about"
        f" {round(expected)} expected from its baseline ({health.baseline_spans} spans before"
        f" it), and none failed: its traffic stopped or fell rather than failing. Nothing in the"
        f" lake shows a failure; look at its callers, and at whether its telemetry export stopped."
    )


def rows_of(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The rows of a sql tool result as dicts by column name."""
    columns = list(result.get("columns", []))
    return [dict(zip(columns, row, strict=False)) for row in result.get("rows", [])]


def read_health(service: str, result: Mapping[str, Any]) -> Health:
    by_period = {r["period"]: r for r in rows_of(result)}
    now = by_period.get("incident", {})
    before = by_period.get("baseline", {})
    return Health(
        service=service,
        spans=int(now.get("spans") or 0),
        errors=int(now.get("errors") or 0),
        error_traces=int(now.get("error_traces") or 0),
        error_rate=float(now.get("error_rate") or 0.0),
        p95_ms=_float(now.get("p95_ms")),
        baseline_spans=int(before.get("spans") or 0),
        baseline_error_rate=float(before.get("error_rate") or 0.0),
        baseline_p95_ms=_float(before.get("p95_ms")),
    )


def read_downstream(result: Mapping[str, Any]) -> list[Downstream]:
    return [
        Downstream(
            service=str(r["downstream"]),
            error_spans=int(r["error_spans"] or 0),
            traces=int(r["traces"] or 0),
            example_message=r.get("example_message"),
            example_trace=r.get("example_trace"),
        )
        for r in rows_of(result)
        if r.get("downstream") is not None and int(r.get("error_spans") or 0) > 0
    ]


def next_hop(
    health: Health, downstream: Sequence[Downstream], visited: Sequence[str]
) -> Downstream | None:
    """The downstream service to follow, if one explains enough of the failing traces."""
    for candidate in downstream:
        if candidate.service in visited:
            continue
        share = candidate.traces / health.error_traces if health.error_traces else 1.0
        return candidate if share >= FOLLOW_SHARE else None
    return None


def share(part: int, whole: int) -> str:
    return pct(part / whole) if whole else "all"


def pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


# Linking the investigations of one incident ----------------------------------------------------


def filter_literal(text: str) -> str:
    """A quoted string for a resource list filter."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def peers_filter(service: str) -> str:
    """The filter for the active investigations of ``service``."""
    states = " OR ".join(f"state = {filter_literal(s)}" for s in ACTIVE_INVESTIGATION_STATES)
    return f"service = {filter_literal(service)} AND ({states})"


def active_span(investigation: Mapping[str, Any]) -> tuple[dt.datetime, dt.datetime] | None:
    """When an investigation's anomalies happened, or None if it does not say.

    ``last_anomaly_time`` is the start of the last anomalous window, which itself lasted a while:
    as for the incident window, a minute is the least an incident is taken to last.
    """
    first = investigation.get("first_anomaly_time")
    if not first:
        return None
    try:
        start = parse_time(first)
        last = parse_time(investigation.get("last_anomaly_time") or first)
    except (TypeError, ValueError):
        return None
    return start, max(last, start) + MIN_INCIDENT


def overlap(w: Window, span: tuple[dt.datetime, dt.datetime]) -> dt.timedelta | None:
    """How long ``span`` overlaps the incident window, or None if they do not meet."""
    start, end = max(w.start, span[0]), min(w.end, span[1])
    return end - start if start <= end else None


def cause_investigation(
    own: str, w: Window, candidates: Sequence[Mapping[str, Any]]
) -> Mapping[str, Any] | None:
    """Of the root-cause service's investigations, the one of this incident.

    Active ones whose anomalies overlap the incident window qualify; the longest overlap wins,
    then the name, so the choice is the same every time the same list is read.
    """
    best: tuple[dt.timedelta, str] | None = None
    chosen: Mapping[str, Any] | None = None
    for inv in candidates:
        name = inv.get("name")
        if not isinstance(name, str) or name == own:
            continue
        if inv.get("state") not in ACTIVE_INVESTIGATION_STATES:
            continue
        span = active_span(inv)
        met = overlap(w, span) if span is not None else None
        if met is None:
            continue
        # Longest overlap first; among equals the smallest name.
        if best is None or met > best[0] or (met == best[0] and name < best[1]):
            best, chosen = (met, name), inv
    return chosen


def link_calls(own: str, service: str, cause: str) -> dict[str, dict[str, Any]]:
    """The resources tool calls that link investigation ``own`` (of ``service``) to ``cause``.

    Both are field-mask updates that set one value: running them again changes nothing, and
    ``related.<own>`` touches only this investigation's key, so links other investigations
    record at the same time are kept.
    """
    return {
        "caused_by": {
            "method": "update",
            "name": own,
            "body": {"caused_by": cause},
            "update_mask": ["caused_by"],
        },
        "related": {
            "method": "update",
            "name": cause,
            "body": {"related": {own: {"service": service, "relation": SYMPTOM}}},
            "update_mask": [f"related.{own}"],
        },
    }
