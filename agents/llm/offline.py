"""The built-in investigator: a deterministic stand-in for a language model.

It runs the same loop as Claude: it reads the transcript, answers with text and ``tool_use``
blocks, and the engine runs those tools and hands back the results. Everything it decides is a
function of the transcript alone (no hidden state, no clock, no randomness), so a session resumed
after a crash reads exactly like one that never stopped.

What it does (see :mod:`agents.llm.playbook`): health of the affected service against its
baseline, failing downstream services under its failing spans, one more hop downstream if that
explains the failures, then a finding naming the root-cause service with every query and the
numbers it returned; when the root cause is another service, it looks for that service's active
investigation of the same time and links the two (``caused_by`` here, ``related`` there); then a
proposal to resolve the investigation, which waits for approval.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agents.briefing import parse_context
from agents.sessions.snapshots import Usage

from .base import AssistantTurn, ToolSpec, ToolUse
from .playbook import (
    MAX_HOPS,
    Downstream,
    Health,
    Window,
    cause_investigation,
    downstream_sql,
    health_sql,
    link_calls,
    next_hop,
    peers_filter,
    read_downstream,
    read_health,
    share,
    traffic_drop,
)

NAME = "emberlake-offline-investigator"


@dataclass
class Reading:
    """What the transcript says so far, indexed the way the investigator needs it."""

    context: dict[str, Any] | None = None
    turn: int = 1
    #: purpose -> tool call input, and purpose -> (result text, is_error), for its own calls.
    calls: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    results: dict[str, tuple[str, bool]] = field(default_factory=dict)

    @classmethod
    def of(cls, messages: Sequence[Mapping[str, Any]]) -> Reading:
        reading = cls()
        purposes: dict[str, str] = {}
        for message in messages:
            content = message["content"]
            if message["role"] == "assistant":
                reading.turn += 1
            if isinstance(content, str):
                continue
            for block in content:
                if block["type"] == "text" and message["role"] == "user":
                    if reading.context is None:
                        reading.context = parse_context(block["text"])
                elif block["type"] == "tool_use" and block["id"].startswith("toolu_"):
                    purpose = block["id"].split("_", 2)[-1]
                    purposes[block["id"]] = purpose
                    reading.calls[purpose] = block["input"]
                elif block["type"] == "tool_result" and block["tool_use_id"] in purposes:
                    text = block["content"]
                    if not isinstance(text, str):
                        text = "".join(p.get("text", "") for p in text)
                    reading.results[purposes[block["tool_use_id"]]] = (text, block["is_error"])
        return reading

    def json_result(self, purpose: str) -> dict[str, Any]:
        text, is_error = self.results.get(purpose, ("{}", True))
        if is_error:
            return {}
        try:
            value = json.loads(text)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class Chain:
    """The services followed downstream so far, with their health and downstream failures."""

    services: tuple[str, ...]
    health: tuple[Health, ...]
    downstream: tuple[tuple[Downstream, ...], ...]
    hops: tuple[Downstream, ...]
    #: The next service to query, or None once the root cause is known.
    todo: str | None

    @property
    def root(self) -> str:
        return self.services[-1]


class OfflineInvestigator:
    """A :class:`~agents.llm.base.Model` that investigates with a fixed, sound method."""

    @property
    def name(self) -> str:
        return NAME

    def complete(
        self, messages: Sequence[Mapping[str, Any]], tools: Sequence[ToolSpec]
    ) -> AssistantTurn:
        r = Reading.of(messages)
        ctx = r.context
        if not ctx or not ctx.get("service"):
            return self._say("There is no investigation context with a service to look at.")
        window = Window.of(ctx)
        chain = follow(str(ctx["service"]), r)
        if chain.todo is not None:
            depth = len(chain.health)
            svc = chain.todo
            uses = []
            if depth == 0:
                uses.append(self._use(r, "schema", "sql", {"describe": "spans"}))
                text = (
                    f"Checking {svc}'s error rate and latency against the baseline, and which"
                    " other services fail under its failing spans."
                )
            else:
                hop = chain.hops[-1]
                text = (
                    f"The failing spans of {chain.services[-2]} have failing children in {svc}"
                    f" ({hop.error_spans} spans in {hop.traces} traces). Following it downstream."
                )
            uses.append(self._use(r, f"health_{depth}", "sql", {"sql": health_sql(svc, window)}))
            uses.append(self._use(r, f"down_{depth}", "sql", {"sql": downstream_sql(svc, window)}))
            return self._say(text, uses)
        inv = str(ctx.get("investigation", ""))
        if "finding" not in r.calls:
            body = finding(ctx, window, chain, r)
            record = {
                "method": "create",
                "collection": f"{inv}/findings",
                "id": "root-cause",
                "body": body,
            }
            mark = {
                "method": "update",
                "name": inv,
                "body": {"root_cause": chain.root},
                "update_mask": ["root_cause"],
            }
            uses = [
                self._use(r, "finding", "resources", record),
                self._use(r, "rootcause", "resources", mark),
            ]
            text = body["summary"]
            if chain.root != chain.services[0]:
                # Another service's failures: its own investigation may be the same incident.
                peers = {
                    "method": "list",
                    "collection": "investigations",
                    "filter": peers_filter(chain.root),
                    "page_size": 50,
                }
                uses.append(self._use(r, "peers", "resources", peers))
                text += f" Looking for an open investigation of {chain.root} to link to."
            return self._say(text, uses)
        cause = cause_of(inv, window, r)
        if cause is not None and "caused_by" not in r.calls:
            calls = link_calls(inv, chain.services[0], cause)
            text = (
                f"{cause} investigates {chain.root} over the same time: recording that {inv}"
                " is caused by it, and listing this investigation there."
            )
            uses = [self._use(r, purpose, "resources", args) for purpose, args in calls.items()]
            return self._say(text, uses)
        if "resolve" not in r.calls and not r.results.get("finding", ("", True))[1]:
            resolution = f"Root cause: {chain.root}; see {inv}/findings/root-cause."
            if linked(r):
                resolution = (
                    f"Root cause: {chain.root}, investigated in {cause};"
                    f" see {inv}/findings/root-cause."
                )
            args = {
                "method": "update",
                "name": inv,
                "body": {"state": "RESOLVED", "resolution": resolution},
                "update_mask": ["state", "resolution"],
                "reason": f"the investigation found the root cause in {chain.root}",
            }
            text = f"Proposing to resolve {inv} with root cause {chain.root}; this needs approval."
            return self._say(text, [self._use(r, "resolve", "resources", args)])
        return self._say(closing(chain, r))

    @staticmethod
    def _use(r: Reading, purpose: str, tool: str, arguments: dict[str, Any]) -> ToolUse:
        return ToolUse(f"toolu_{r.turn:02d}_{purpose}", tool, arguments)

    @staticmethod
    def _say(text: str, uses: Sequence[ToolUse] = ()) -> AssistantTurn:
        return AssistantTurn(
            text=text,
            tool_uses=tuple(uses),
            stop_reason="tool_use" if uses else "end_turn",
            usage=Usage(),
            model=NAME,
        )


def follow(service: str, r: Reading) -> Chain:
    """Walk the results so far from the affected service downstream."""
    services = [service]
    healths: list[Health] = []
    downs: list[tuple[Downstream, ...]] = []
    hops: list[Downstream] = []
    for depth in range(MAX_HOPS + 1):
        if f"health_{depth}" not in r.calls:
            return Chain(tuple(services), tuple(healths), tuple(downs), tuple(hops), services[-1])
        health = read_health(services[-1], r.json_result(f"health_{depth}"))
        down = tuple(read_downstream(r.json_result(f"down_{depth}")))
        healths.append(health)
        downs.append(down)
        hop = next_hop(health, down, services) if depth < MAX_HOPS else None
        if hop is None:
            break
        hops.append(hop)
        services.append(hop.service)
    return Chain(tuple(services), tuple(healths), tuple(downs), tuple(hops), None)


def finding(ctx: Mapping[str, Any], window: Window, chain: Chain, r: Reading) -> dict[str, Any]:
    """The finding resource: root cause, summary, and every query with what it returned."""
    root = chain.root
    drop = None if chain.hops else traffic_drop(ctx, chain.health[0], window)
    lines = [f"Root cause: {root}." if drop is None else f"Root cause: {root} lost its traffic."]
    lines.append(chain.health[0].describe() + ".")
    for i, hop in enumerate(chain.hops):
        upstream = chain.health[i]
        lines.append(
            f"{share(hop.traces, upstream.error_traces)} of {upstream.service}'s failing traces"
            f" ({hop.traces} of {upstream.error_traces}) have failing spans in {hop.service}"
            f" directly under its failing spans ({hop.error_spans} spans"
            + (f", e.g. '{hop.example_message}'" if hop.example_message else "")
            + (f", trace {hop.example_trace}" if hop.example_trace else "")
            + ")."
        )
        if i + 1 < len(chain.health):
            lines.append(chain.health[i + 1].describe() + ".")
    last = chain.downstream[len(chain.health) - 1] if chain.downstream else ()
    if chain.hops and not last:
        lines.append(f"{root}'s own failing spans have no failing calls into other services.")
    elif drop is not None:
        lines.append(drop)
    elif not chain.hops:
        lines.append(
            f"No other service fails under {root}'s failing spans"
            if not last
            else f"Failures below {root} explain too few of its failing traces"
        )
        lines[-1] += f", so the failures start in {root} itself."
    evidence = []
    for purpose in sorted(r.calls):
        if purpose.startswith(("health_", "down_")):
            depth = int(purpose.split("_")[1])
            svc = chain.services[depth] if depth < len(chain.services) else "?"
            result = r.json_result(purpose)
            evidence.append(
                {
                    "query": r.calls[purpose].get("sql", ""),
                    "about": f"{'health' if purpose[0] == 'h' else 'downstream failures'} of {svc}",
                    "columns": result.get("columns", []),
                    "rows": result.get("rows", [])[:10],
                }
            )
    if chain.hops:
        explained = chain.hops[0].traces / max(1, chain.health[0].error_traces)
        confidence = round(min(0.95, 0.5 + explained / 2), 2)
    else:
        confidence = 0.5 if chain.health[0].errors or drop else 0.2
    return {
        "kind": "root_cause" if drop is None else "traffic_drop",
        "service": root,
        "summary": " ".join(lines),
        "detail": f"Path of failures: {' -> '.join(chain.services)}.",
        "confidence": confidence,
        "evidence": evidence,
        "path": list(chain.services),
        "author": NAME,
    }


def cause_of(own: str, window: Window, r: Reading) -> str | None:
    """The investigation this one is caused by, from the list of the root cause's investigations."""
    listed = r.json_result("peers").get("investigations")
    if not isinstance(listed, list):
        return None
    cause = cause_investigation(own, window, [i for i in listed if isinstance(i, dict)])
    return None if cause is None else str(cause["name"])


def linked(r: Reading) -> bool:
    """Whether both link updates were recorded."""
    return all(p in r.results and not r.results[p][1] for p in ("caused_by", "related"))


def closing(chain: Chain, r: Reading) -> str:
    """The last words of a session."""
    text = f"Done. Root cause: {chain.root} (path {' -> '.join(chain.services)})."
    if "caused_by" in r.calls:
        cause = str(r.calls["caused_by"].get("body", {}).get("caused_by", ""))
        if linked(r):
            text += f" Linked to {cause}, the investigation of {chain.root}."
        else:
            pair = ("caused_by", "related")
            failed = [r.results.get(p, ("no result", True)) for p in pair]
            why = next(out for out, is_error in failed if is_error)
            text += f" Linking to {cause} failed: {why[:300]}"
    found_text, found_error = r.results.get("finding", ("", True))
    if found_error:
        return text + f" Recording the finding failed: {found_text[:500]}"
    if "resolve" in r.results:
        outcome, refused = r.results["resolve"]
        if refused:
            return text + f" The investigation stays open: {outcome[:300]}"
        return text + " The investigation is resolved."
    return text
