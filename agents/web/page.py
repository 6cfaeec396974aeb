"""Render the investigations page: plain HTML with inline SVG charts (no scripts, no CDN).

The page tells each incident as one story. An investigation whose root cause lies in another
investigation's service (``caused_by``) is shown inside that investigation, so the incident reads
from its cause down to its symptoms. Each investigation shows its root cause, summary and
findings (with the queries behind them), and its anomalies, each with a chart of the metric that
fired, observed against expected, with the anomalous window marked. Everything shown comes from
tenants and agents, so every value is escaped. The page refreshes itself every 15 seconds.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agents.resources.schema import ACTIVE_INVESTIGATION_STATES
from agents.resources.service import ResourceService
from emberlake.errors import EmberlakeError

MAX_ANOMALIES = 20
MAX_FINDINGS = 20
#: Rows of one evidence query shown on the page (the finding may hold more).
MAX_EVIDENCE_ROWS = 10
_W, _H, _PAD = 520, 140, 28


@dataclass(frozen=True)
class InvestigationView:
    """One investigation with what the page shows of it."""

    investigation: dict[str, Any]
    anomalies: list[dict[str, Any]]
    findings: list[dict[str, Any]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.investigation["name"])


@dataclass(frozen=True)
class Story:
    """An investigation and the investigations caused by it, each with its own effects."""

    view: InvestigationView
    effects: tuple[Story, ...] = ()

    def members(self) -> list[InvestigationView]:
        return [self.view, *(v for s in self.effects for v in s.members())]


def _view(service: ResourceService, tenant: str, inv: dict[str, Any]) -> InvestigationView:
    anomalies = service.list(
        f"tenants/{tenant}/anomalies",
        filter=f'investigation = "{inv["name"]}"',
        order_by="window_start desc",
        page_size=MAX_ANOMALIES,
    ).resources
    findings = service.list(
        f"{inv['name']}/findings", order_by="create_time", page_size=MAX_FINDINGS
    ).resources
    return InvestigationView(inv, anomalies, findings)


def load_page_data(service: ResourceService, tenant: str) -> list[InvestigationView]:
    """Open investigations of the tenant, newest activity first, with their latest anomalies and
    their findings; then the investigations they are caused by that are no longer open (so a
    resolved cause still heads its incident's story)."""
    states = " OR ".join(f'state = "{s}"' for s in ACTIVE_INVESTIGATION_STATES)
    page = service.list(
        f"tenants/{tenant}/investigations",
        filter=states,
        order_by="last_anomaly_time desc, create_time desc",
        page_size=100,
    )
    views = [_view(service, tenant, inv) for inv in page.resources]
    shown = {v.name for v in views}
    own = f"tenants/{tenant}/investigations/"
    for view in list(views):
        cause = view.investigation.get("caused_by")
        # Only this tenant's: the field is written by agents, and a name is only a claim.
        if not isinstance(cause, str) or cause in shown or not cause.startswith(own):
            continue
        try:
            views.append(_view(service, tenant, service.get(cause)))
        except EmberlakeError:
            continue  # deleted or malformed: the link is shown without a target
        shown.add(cause)
    return views


def stories(views: Sequence[InvestigationView]) -> list[Story]:
    """The views grouped by ``caused_by``: each story starts at an investigation not caused by
    another one on the page; stories keep the order of their earliest member in ``views``."""
    names = {v.name for v in views}
    effects: dict[str, list[InvestigationView]] = {}
    heads = []
    for v in views:
        cause = v.investigation.get("caused_by")
        if isinstance(cause, str) and cause in names and cause != v.name:
            effects.setdefault(cause, []).append(v)
        else:
            heads.append(v)
    placed: set[str] = set()

    def build(v: InvestigationView) -> Story:
        placed.add(v.name)
        below = [build(c) for c in effects.get(v.name, []) if c.name not in placed]
        return Story(v, tuple(below))

    out = [build(v) for v in heads]
    # caused_by links that go round in a circle have no head: start at the first one listed.
    out += [build(v) for v in views if v.name not in placed]
    order = {v.name: i for i, v in enumerate(views)}
    return sorted(out, key=lambda s: min(order[m.name] for m in s.members()))


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def chart_svg(anomaly: dict[str, Any]) -> str:
    """An SVG line chart of ``anomaly["series"]``: observed (solid), expected (dashed)."""
    series = [p for p in anomaly.get("series") or [] if isinstance(p, dict)]
    if not series:
        return ""
    observed = [float(p.get("observed") or 0.0) for p in series]
    expected = [None if p.get("expected") is None else float(p["expected"]) for p in series]
    values = observed + [e for e in expected if e is not None]
    low, high = min(values + [0.0]), max(values)
    span = (high - low) or 1.0
    step = (_W - 2 * _PAD) / max(1, len(series) - 1)

    def xy(i: int, v: float) -> str:
        x = _PAD + i * step
        y = _H - _PAD - (v - low) / span * (_H - 2 * _PAD)
        return f"{x:.1f},{y:.1f}"

    obs_points = " ".join(xy(i, v) for i, v in enumerate(observed))
    exp_points = " ".join(xy(i, v) for i, v in enumerate(expected) if v is not None)
    fired = next(
        (i for i, p in enumerate(series) if p.get("window_start") == anomaly.get("window_start")),
        len(series) - 1,
    )
    fx, fy = xy(fired, observed[fired]).split(",")
    metric = html.escape(str(anomaly.get("metric", "")))
    return (
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}"'
        f' viewBox="0 0 {_W} {_H}" role="img" aria-label="{metric}: observed vs expected">'
        f'<rect x="0" y="0" width="{_W}" height="{_H}" fill="#fafafa" stroke="#ddd"/>'
        f'<text x="{_PAD}" y="16" font-size="11" fill="#333">{metric}</text>'
        f'<text x="4" y="{_PAD + 4}" font-size="10" fill="#777">{_fmt(high)}</text>'
        f'<text x="4" y="{_H - _PAD + 4}" font-size="10" fill="#777">{_fmt(low)}</text>'
        f'<polyline class="expected" points="{exp_points}" fill="none" stroke="#888"'
        ' stroke-dasharray="4 3" stroke-width="1.5"/>'
        f'<polyline class="observed" points="{obs_points}" fill="none" stroke="#1f6feb"'
        ' stroke-width="2"/>'
        f'<circle class="fired" cx="{fx}" cy="{fy}" r="4" fill="#d1242f"/>'
        f'<text x="{_W - 150}" y="16" font-size="10" fill="#1f6feb">— observed</text>'
        f'<text x="{_W - 80}" y="16" font-size="10" fill="#888">- - expected</text>'
        "</svg>"
    )


def _anomaly_html(a: dict[str, Any]) -> str:
    e = html.escape
    traces = ", ".join(f"<code>{e(t)}</code>" for t in a.get("example_trace_ids") or [])
    return (
        f'<li class="anomaly" id="{e(a["name"])}">'
        f'<div><span class="sev sev-{e(str(a.get("severity", "")))}">'
        f"{e(str(a.get('severity', '')))}</span> <b>{e(str(a.get('kind', '')))}</b> "
        f"{e(str(a.get('summary', '')))} "
        f"<small>{e(str(a.get('window_start', '')))} – {e(str(a.get('window_end', '')))}</small>"
        "</div>"
        + (f"<div><small>example traces: {traces}</small></div>" if traces else "")
        + chart_svg(a)
        + "</li>"
    )


def _text(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _link(name: Any, shown: set[str]) -> str:
    """An investigation's name, as a link to it when it is on the page."""
    code = f"<code>{_text(name)}</code>"
    return f'<a href="#{_text(name)}">{code}</a>' if name in shown else code


def _table(columns: Any, rows: Any) -> str:
    if not isinstance(rows, list) or not rows:
        return ""
    head = "".join(f"<th>{_text(c)}</th>" for c in columns) if isinstance(columns, list) else ""
    body = "".join(
        "<tr>"
        + "".join(f"<td>{_text(c)}</td>" for c in (row if isinstance(row, list) else [row]))
        + "</tr>"
        for row in rows[:MAX_EVIDENCE_ROWS]
    )
    more = len(rows) - MAX_EVIDENCE_ROWS
    note = f"<caption>first {MAX_EVIDENCE_ROWS} of {len(rows)} rows</caption>" if more > 0 else ""
    return f"<table>{note}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _evidence_html(item: Any) -> str:
    """One piece of evidence: what it is about, the query, and the rows it returned."""
    if not isinstance(item, dict):
        return f'<li class="evidence"><pre>{_text(item)}</pre></li>'
    query = item.get("query") or item.get("sql")
    return (
        '<li class="evidence">'
        + (f"<div>{_text(item['about'])}</div>" if item.get("about") else "")
        + (f'<pre class="query"><code>{_text(query)}</code></pre>' if query else "")
        + _table(item.get("columns"), item.get("rows"))
        + "</li>"
    )


def _finding_html(f: dict[str, Any]) -> str:
    facts = [
        f"<b>{_text(f['kind'])}</b>" if f.get("kind") else "",
        f"service <b>{_text(f['service'])}</b>" if f.get("service") else "",
        f"confidence {_text(f['confidence'])}" if f.get("confidence") is not None else "",
    ]
    path = f.get("path")
    evidence = f.get("evidence") if isinstance(f.get("evidence"), list) else []
    return (
        f'<li class="finding" id="{_text(f.get("name"))}">'
        f"<div>{' · '.join(x for x in facts if x)}</div>"
        f'<p class="finding-summary">{_text(f.get("summary"))}</p>'
        + (f"<p><small>{_text(f['detail'])}</small></p>" if f.get("detail") else "")
        + (
            f"<p><small>path: {' → '.join(_text(p) for p in path)}</small></p>"
            if isinstance(path, list) and path
            else ""
        )
        + (
            f"<details><summary>{len(evidence)} evidence queries</summary>"
            f'<ol class="evidence">{"".join(_evidence_html(x) for x in evidence)}</ol></details>'
            if evidence
            else ""
        )
        + "</li>"
    )


def _relations_html(inv: dict[str, Any], shown: set[str]) -> str:
    out = []
    cause = inv.get("caused_by")
    if cause:
        out.append(f'<p class="caused-by">Caused by {_link(cause, shown)}</p>')
    related = inv.get("related")
    if isinstance(related, dict) and related:
        items = []
        for name, about in sorted(related.items()):
            about = about if isinstance(about, dict) else {}
            detail = ", ".join(
                _text(about[k]) for k in ("service", "relation") if about.get(k) is not None
            )
            items.append(_link(name, shown) + (f" ({detail})" if detail else ""))
        out.append(f'<p class="related">Related: {"; ".join(items)}</p>')
    return "".join(out)


def _investigation_html(story: Story, shown: set[str], depth: int = 0) -> str:
    inv = story.view.investigation
    heading = "h2" if depth == 0 else "h3"
    findings = story.view.findings
    effects = ""
    if story.effects:
        effects = (
            '<div class="effects"><p><b>Caused by this investigation:</b></p>'
            + "".join(_investigation_html(s, shown, depth + 1) for s in story.effects)
            + "</div>"
        )
    return (
        f'<article class="investigation" id="{_text(inv["name"])}">'
        f"<{heading}>{_text(inv.get('title'))}</{heading}>"
        f"<p><code>{_text(inv['name'])}</code> · state <b>{_text(inv.get('state'))}</b>"
        f" · service <b>{_text(inv.get('service'))}</b>"
        f" · {_count(inv.get('anomaly_count'))} anomalies"
        f" · opened {_text(inv.get('create_time'))}</p>"
        + (
            f'<p class="root-cause">Root cause: <b>{_text(inv["root_cause"])}</b></p>'
            if inv.get("root_cause")
            else ""
        )
        + _relations_html(inv, shown)
        + (f'<p class="summary">{_text(inv["summary"])}</p>' if inv.get("summary") else "")
        + (
            f'<p class="resolution">Resolution: {_text(inv["resolution"])}</p>'
            if inv.get("resolution")
            else ""
        )
        + (
            f'<ul class="findings">{"".join(_finding_html(f) for f in findings)}</ul>'
            if findings
            else ""
        )
        + '<ul class="anomalies">'
        + "".join(_anomaly_html(a) for a in story.view.anomalies)
        + "</ul>"
        + effects
        + "</article>"
    )


def _count(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _story_html(story: Story, shown: set[str]) -> str:
    members = story.members()
    head = ""
    if len(members) > 1:
        cause = story.view.investigation
        root = cause.get("root_cause") or cause.get("service")
        head = (
            f'<p class="incident-head">One incident, {len(members)} investigations'
            + (f"; root cause <b>{_text(root)}</b>" if root else "")
            + "</p>"
        )
    return f'<section class="incident">{head}{_investigation_html(story, shown)}</section>'


_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
    "section{border:1px solid #ddd;border-radius:6px;padding:1em;margin-bottom:1.5em}"
    "ul{list-style:none;padding:0}li{margin:1em 0}"
    ".effects{margin-left:1.5em;padding-left:1em;border-left:3px solid #d1242f}"
    ".findings li{background:#f6f8fa;padding:.5em;border-radius:4px}"
    "pre{white-space:pre-wrap;font-size:12px}table{border-collapse:collapse;font-size:12px}"
    "td,th{border:1px solid #ddd;padding:0 .4em}"
    ".sev{padding:0 .4em;border-radius:3px;color:#fff;background:#9a6700}"
    ".sev-high{background:#bc4c00}.sev-critical{background:#d1242f}"
)


def render_page(tenant: str, views: list[InvestigationView]) -> str:
    """The whole page as HTML text."""
    shown = {v.name for v in views}
    body = "".join(_story_html(s, shown) for s in stories(views))
    body = body or '<p class="empty">No open investigations.</p>'
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta http-equiv="refresh" content="15">'
        f"<title>emberlake · investigations · {_text(tenant)}</title>"
        f"<style>{_STYLE}</style></head><body>"
        f"<h1>Open investigations <small>tenant {_text(tenant)}</small></h1>{body}</body></html>"
    )
