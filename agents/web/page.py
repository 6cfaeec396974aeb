"""Render the investigations page: plain HTML with inline SVG charts (no scripts, no CDN).

Each open investigation lists its anomalies; each anomaly gets a chart of the metric that fired,
observed against expected over the recent windows stored on the anomaly, with the anomalous
window marked. The page refreshes itself every 15 seconds.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from agents.resources.schema import ACTIVE_INVESTIGATION_STATES
from agents.resources.service import ResourceService

MAX_ANOMALIES = 20
_W, _H, _PAD = 520, 140, 28


@dataclass(frozen=True)
class InvestigationView:
    investigation: dict[str, Any]
    anomalies: list[dict[str, Any]]


def load_page_data(service: ResourceService, tenant: str) -> list[InvestigationView]:
    """Open investigations of the tenant, newest activity first, with their latest anomalies."""
    states = " OR ".join(f'state = "{s}"' for s in ACTIVE_INVESTIGATION_STATES)
    page = service.list(
        f"tenants/{tenant}/investigations",
        filter=states,
        order_by="last_anomaly_time desc, create_time desc",
        page_size=100,
    )
    views = []
    for inv in page.resources:
        anomalies = service.list(
            f"tenants/{tenant}/anomalies",
            filter=f'investigation = "{inv["name"]}"',
            order_by="window_start desc",
            page_size=MAX_ANOMALIES,
        ).resources
        views.append(InvestigationView(inv, anomalies))
    return views


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


def render_page(tenant: str, views: list[InvestigationView]) -> str:
    """The whole page as HTML text."""
    e = html.escape
    parts = []
    for view in views:
        inv = view.investigation
        parts.append(
            f'<section class="investigation" id="{e(inv["name"])}">'
            f"<h2>{e(str(inv.get('title', '')))}</h2>"
            f"<p><code>{e(inv['name'])}</code> · state <b>{e(str(inv.get('state', '')))}</b>"
            f" · service <b>{e(str(inv.get('service', '')))}</b>"
            f" · {int(inv.get('anomaly_count') or 0)} anomalies"
            f" · opened {e(str(inv.get('create_time', '')))}</p>"
            + (f"<p>{e(str(inv['summary']))}</p>" if inv.get("summary") else "")
            + '<ul class="anomalies">'
            + "".join(_anomaly_html(a) for a in view.anomalies)
            + "</ul></section>"
        )
    body = "".join(parts) or '<p class="empty">No open investigations.</p>'
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta http-equiv="refresh" content="15">'
        f"<title>emberlake · investigations · {e(tenant)}</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
        "section{border:1px solid #ddd;border-radius:6px;padding:1em;margin-bottom:1.5em}"
        "ul{list-style:none;padding:0}li{margin:1em 0}"
        ".sev{padding:0 .4em;border-radius:3px;color:#fff;background:#9a6700}"
        ".sev-high{background:#bc4c00}.sev-critical{background:#d1242f}</style></head><body>"
        f"<h1>Open investigations <small>tenant {e(tenant)}</small></h1>{body}</body></html>"
    )
