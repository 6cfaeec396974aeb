"""How an investigation is put to an agent: the system prompt and the first user message.

The first user message carries the investigation as a fenced JSON block (service, window,
anomalies), so a language model can read it and the offline investigator can parse it with the
same text in front of it. Pure functions only.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

SYSTEM_PROMPT = """\
You are an on-call engineer investigating an incident in a telemetry lakehouse. You work only
through tools:
- sql: read-only DuckDB SQL over this tenant's tables spans, logs and metrics (use `describe`
  first to see columns). spans has start_time, end_time (TIMESTAMPTZ, UTC), duration_ms,
  trace_id, span_id, parent_span_id, name, kind, status_code ('UNSET', 'OK', 'ERROR'),
  status_message, service_name, attributes (map).
- resources: get, list, create, update and delete resources of the resource API
  (investigations, anomalies, known_issues, findings, approvals).
- shell: a sandboxed bash for calculations over results you already have.

Method: compare the affected service's error rate and latency in the incident window with the
baseline before it. Follow failing traces: join spans on trace_id and parent_span_id to find
failing child spans in other services, and keep going downstream while that explains the
errors. Then record one finding (collection `findings`) naming the root-cause service, with the
exact queries you ran and the numbers they returned as evidence, and set the investigation's
root_cause. If the root cause is another service, list that service's OPEN or INVESTIGATING
investigations; if one of them covers the same time, it is the same incident: update this
investigation with caused_by = its name (update_mask ["caused_by"]), and update that one with
related = {"<this investigation's name>": {"service": "<this service>", "relation": "symptom"}}
and update_mask ["related.<this investigation's name>"], which adds only this entry. Finally
propose resolving the investigation (update it with state RESOLVED and a resolution); a person
must approve that. Be precise and brief; do not guess where a query can tell."""

CONTEXT_RE = re.compile(r"```json\n(?P<body>\{.*?\})\n```", re.DOTALL)


def iso(value: dt.datetime) -> str:
    """UTC timestamp as the SQL tool takes it: ``2026-01-01 00:00:00.000000+00``."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")


def parse_time(value: Any) -> dt.datetime:
    """A timestamp from ISO text or epoch seconds/microseconds, as aware UTC."""
    if isinstance(value, int | float):
        seconds = value / 1e6 if value > 1e12 else float(value)
        return dt.datetime.fromtimestamp(seconds, dt.UTC)
    parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def investigation_context(
    investigation: Mapping[str, Any], anomalies: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    """The facts an investigator starts from, in one flat, deterministic dict."""
    starts = [parse_time(a["window_start"]) for a in anomalies if a.get("window_start") is not None]
    ends = [parse_time(a["window_end"]) for a in anomalies if a.get("window_end") is not None]
    for key, bucket in (("first_anomaly_time", starts), ("last_anomaly_time", ends)):
        if investigation.get(key) is not None:
            bucket.append(parse_time(investigation[key]))
    context: dict[str, Any] = {
        "investigation": investigation.get("name", ""),
        "service": investigation.get("service", ""),
        "title": investigation.get("title", ""),
        "window_start": iso(min(starts)) if starts else None,
        "window_end": iso(max(ends)) if ends else None,
        "anomalies": [
            {
                k: a.get(k)
                for k in (
                    "name",
                    "signal",
                    "kind",
                    "observed",
                    "expected",
                    "severity",
                    "window_start",
                    "window_end",
                    "example_trace_ids",
                )
                if a.get(k) is not None
            }
            for a in anomalies
        ],
    }
    return context


def first_message(context: Mapping[str, Any]) -> str:
    """The user message that opens a session on an investigation."""
    lines = [
        f"Investigate {context.get('investigation') or 'this incident'}:"
        f" {context.get('title') or 'anomalies in service ' + str(context.get('service'))}.",
        f"Service: {context.get('service')}; window {context.get('window_start')}"
        f" to {context.get('window_end')} (UTC).",
        "Investigation context:",
        "```json",
        json.dumps(context, indent=1, sort_keys=True, default=str),
        "```",
    ]
    return "\n".join(lines)


def parse_context(text: str) -> dict[str, Any] | None:
    """The context block of a first message, or None if there is none."""
    match = CONTEXT_RE.search(text)
    if not match:
        return None
    try:
        value = json.loads(match.group("body"))
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
