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
from agents.web.page import InvestigationView, chart_svg, load_page_data, render_page, stories
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


def incident_store(tmp_path: Path) -> tuple[SQLiteResourceStore, dict[str, str]]:
    """payments broke; checkout and frontend fail because of it: three linked investigations,
    one unrelated, and the payments finding holding hostile text."""
    store = SQLiteResourceStore(tmp_path / "incident.db")
    service = ResourceService(store)
    coll = "tenants/default/investigations"
    names = {
        svc: service.create(
            coll,
            {
                "title": f"{svc} errors",
                "service": svc,
                "state": "INVESTIGATING",
                "root_cause": "payments",
                "last_anomaly_time": f"2026-11-20T10:00:0{i}Z",
            },
            f"{svc}-errors",
        )["name"]
        for i, svc in enumerate(["payments", "checkout", "frontend", "search"])
    }
    service.update(names["search"], {"root_cause": "search"})
    for svc in ("checkout", "frontend"):
        service.update(names[svc], {"caused_by": names["payments"]}, ["caused_by"])
        service.update(
            names["payments"],
            {"related": {names[svc]: {"service": svc, "relation": "symptom"}}},
            [f"related.{names[svc]}"],
        )
    service.create(
        f"{names['payments']}/findings",
        {
            "summary": "Root cause: payments. <script>alert('x')</script>",
            "detail": "Path of failures: checkout -> payments.",
            "kind": "root_cause",
            "service": "payments",
            "confidence": 0.95,
            "path": ["checkout", "payments"],
            "evidence": [
                {
                    "about": "health of payments",
                    "query": "SELECT count(*) FROM spans WHERE service_name <> 'x'",
                    "columns": ["period", "<i>spans</i>"],
                    "rows": [["incident", "</td><script>1</script>"]] * 12,
                },
                "a note, not a query <b>",
            ],
        },
        "root-cause",
    )
    return store, names


def test_an_incident_reads_as_one_story_from_cause_to_symptoms(tmp_path: Path) -> None:
    store, names = incident_store(tmp_path)
    views = load_page_data(ResourceService(store), "default")
    told = stories(views)
    assert [[v.investigation["service"] for v in s.members()] for s in told] == [
        ["search"],
        ["payments", "frontend", "checkout"],
    ]
    html = render_page("default", views)
    assert html.count('<section class="incident">') == 2
    assert html.count('class="investigation"') == 4
    story = html[html.index(f'id="{names["payments"]}"') :]
    effects = story.index('class="effects"')
    assert effects < story.index(f'id="{names["checkout"]}"')
    assert effects < story.index(f'id="{names["frontend"]}"')
    assert "One incident, 3 investigations; root cause <b>payments</b>" in html
    assert html.count(f'Caused by <a href="#{names["payments"]}">') == 2
    assert f'<a href="#{names["checkout"]}"><code>{names["checkout"]}</code></a> (checkout,' in html
    assert 'class="root-cause">Root cause: <b>payments</b>' in html
    # The finding, its path and its evidence query with the rows it returned (the first ten).
    assert "Path of failures: checkout -&gt; payments." in html
    assert "checkout → payments" in html and "2 evidence queries" in html
    assert "WHERE service_name &lt;&gt; &#x27;x&#x27;</code></pre>" in html
    assert "first 10 of 12 rows" in html and html.count("&lt;/td&gt;&lt;script&gt;") == 10


def test_tenant_text_in_findings_is_escaped(tmp_path: Path) -> None:
    store, _ = incident_store(tmp_path)
    html = render_page("default", load_page_data(ResourceService(store), "default"))
    assert "<script" not in html and "<i>" not in html and "not a query <b>" not in html
    assert "Root cause: payments. &lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    assert "<th>&lt;i&gt;spans&lt;/i&gt;</th>" in html


def test_a_resolved_cause_still_heads_its_story_but_another_tenant_is_never_read(
    tmp_path: Path,
) -> None:
    store, names = incident_store(tmp_path)
    service = ResourceService(store)
    service.update(names["payments"], {"state": "RESOLVED", "resolution": "fixed <now>"})
    service.create("tenants/other/investigations", {"title": "secret of other"}, "secret")
    service.update(
        names["search"], {"caused_by": "tenants/other/investigations/secret"}, ["caused_by"]
    )
    html = render_page("default", load_page_data(service, "default"))
    assert "state <b>RESOLVED</b>" in html and "Resolution: fixed &lt;now&gt;" in html
    assert html.index(f'id="{names["payments"]}"') < html.index(f'id="{names["checkout"]}"')
    # The link is shown as text, but the other tenant's investigation is not loaded.
    assert "Caused by <code>tenants/other/investigations/secret</code>" in html
    assert "secret of other" not in html


def test_caused_by_links_in_a_circle_still_show_every_investigation() -> None:
    def view(name: str, cause: str) -> InvestigationView:
        return InvestigationView({"name": name, "caused_by": cause, "title": name}, [])

    told = stories([view("a", "b"), view("b", "a"), view("c", "c")])
    assert [[v.name for v in s.members()] for s in told] == [["a", "b"], ["c"]]
    assert render_page("t", [view("a", "b"), view("b", "a")]).count('class="investigation"') == 2


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
