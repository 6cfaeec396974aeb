"""The investigations page: rendered HTML, and the same page in a real headless Chromium."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from agents.anomalies import Anomaly, SeriesPoint, anomaly_id, fingerprint, iso_from_us
from agents.investigator_intake import InvestigationIntake
from agents.resources.service import ResourceService
from agents.resources.sqlite import SQLiteResourceStore
from agents.web.page import chart_svg, load_page_data, render_page
from tests.agents.resource_server import serving

T0 = 1_800_000_000_000_000
W = 10_000_000


def incident_anomaly(kind: str = "error_rate", service: str = "checkout") -> Anomaly:
    metric = "error_rate" if kind == "error_rate" else "latency_p95_ms"
    start = T0 + 20 * W
    return Anomaly(
        id=anomaly_id("default", service, kind, metric, start),
        tenant="default",
        service=service,
        signal="spans",
        kind=kind,
        metric=metric,
        window_start=iso_from_us(start),
        window_end=iso_from_us(start + W),
        observed=0.42,
        expected=0.01,
        score=25.0,
        severity="critical",
        fingerprint=fingerprint("default", service, kind, metric),
        summary=f"{service}: error rate 42.0% (expected 1.0%) <b>",
        detected_at=iso_from_us(start),
        example_trace_ids=["ab" * 16],
        series=[
            SeriesPoint(iso_from_us(T0 + i * W), 0.01 + 0.001 * (i % 3), 0.01) for i in range(20)
        ]
        + [SeriesPoint(iso_from_us(start), 0.42, 0.01)],
    )


@pytest.fixture
def store(tmp_path: Path) -> SQLiteResourceStore:
    s = SQLiteResourceStore(tmp_path / "resources.db")
    intake = InvestigationIntake(s, 600)
    intake.handle(incident_anomaly("error_rate"))
    intake.handle(incident_anomaly("latency"))
    closed = intake.handle(incident_anomaly("error_rate", service="search"))
    ResourceService(s).update(closed.investigation, {"state": "RESOLVED"})
    return s


def test_chart_marks_the_window_that_fired() -> None:
    svg = chart_svg(incident_anomaly().to_dict())
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert 'class="observed"' in svg and 'class="expected"' in svg and 'class="fired"' in svg
    # The fired point is the last one, at the top of the chart (the highest value).
    assert 'cx="492.0" cy="28.0"' in svg
    assert chart_svg({"series": []}) == ""


def test_page_lists_open_investigations_only_and_escapes_text(store: SQLiteResourceStore) -> None:
    views = load_page_data(ResourceService(store), "default")
    assert [v.investigation["service"] for v in views] == ["checkout"]
    assert len(views[0].anomalies) == 2
    html = render_page("default", views)
    assert html.count('class="investigation"') == 1 and html.count("<svg") == 2
    assert "(expected 1.0%) &lt;b&gt;" in html and "(expected 1.0%) <b>" not in html
    assert "search" not in html
    assert "No open investigations" in render_page("default", [])


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip(
        "Debian's chromium is not installed: run `apt-get install -y chromium` (make system-deps"
        " does) to test the page in a real browser"
    )


@pytest.mark.integration
def test_page_in_headless_chromium(store: SQLiteResourceStore, tmp_path: Path) -> None:
    browser = chromium()
    with serving(store) as url:
        result = subprocess.run(
            [
                browser,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={tmp_path / 'profile'}",
                "--dump-dom",
                f"{url}/ui",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    dom = result.stdout
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Open investigations" in dom
    inv = (
        ResourceService(store)
        .list("tenants/default/investigations", filter='service = "checkout"')
        .resources[0]
    )
    assert inv["name"] in dom and "checkout" in dom
    assert dom.count("<svg") == 2 and "<polyline" in dom and 'class="fired"' in dom
    assert "error rate 42.0%" in dom
