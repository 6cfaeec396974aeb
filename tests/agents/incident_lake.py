"""An injected incident in a real lake, served by a real query daemon and resource API.

``frontend -> checkout -> {inventory, payments -> ledger}``: one request a second for ten
minutes of baseline and two of incident. In the baseline inventory fails now and then (noise).
In the incident 40% of checkout requests fail because ``payments`` fails under them (or, with
``root="ledger"``, because ledger fails under payments). The spans go through the lake's own
table definitions (``lake.tables.ensure_table``) into an Iceberg SQL catalog; the daemon reads
them as it reads what the lake writer writes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from aiohttp import web

from agents.resources.client import ResourceClient
from agents.resources.http import routes
from agents.resources.store import open_store
from emberlake.settings import Settings, to_env
from emberlake.tenancy import Authenticator
from lake.catalog import open_catalog
from lake.tables import arrow_schema_for, ensure_table

T0 = dt.datetime(2026, 11, 20, 10, 0, tzinfo=dt.UTC)
BASELINE = dt.timedelta(minutes=10)
INCIDENT = dt.timedelta(minutes=2)
INVESTIGATION_ID = "checkout-errors"


def _hex(*parts: object, size: int) -> str:
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:size]


def incident_spans(root: str = "payments") -> list[dict[str, Any]]:
    """Deterministic spans of the scenario (see the module docs)."""
    rows: list[dict[str, Any]] = []
    start = T0 - BASELINE
    seconds = int((BASELINE + INCIDENT).total_seconds())
    for i in range(seconds):
        at = start + dt.timedelta(seconds=i)
        incident = at >= T0
        trace = _hex("trace", i, size=32)
        inventory_fails = i % 50 == 7
        deep_fails = incident and i % 5 in (0, 1)
        payments_fails = deep_fails
        ledger_fails = deep_fails and root == "ledger"
        checkout_fails = inventory_fails or payments_fails

        def span(
            key: str,
            parent: str | None,
            service: str,
            name: str,
            kind: str,
            ms: float,
            failed: bool,
            message: str | None = None,
            *,
            _i: int = i,
            _at: dt.datetime = at,
            _trace: str = trace,
        ) -> str:
            span_id = _hex("span", _i, key, size=16)
            rows.append(
                {
                    "start_time": _at,
                    "end_time": _at + dt.timedelta(milliseconds=ms),
                    "duration_ms": ms,
                    "trace_id": _trace,
                    "span_id": span_id,
                    "parent_span_id": parent,
                    "name": name,
                    "kind": kind,
                    "status_code": "ERROR" if failed else "UNSET",
                    "status_message": message if failed else None,
                    "service_name": service,
                    "attributes": [("http.route", name)],
                }
            )
            return span_id

        slow = 1500.0 if payments_fails else 40.0
        fe = span("fe", None, "frontend", "GET /checkout", "SERVER", slow + 30, checkout_fails)
        fe_c = span("fe-c", fe, "frontend", "POST checkout", "CLIENT", slow + 25, checkout_fails)
        co = span(
            "co",
            fe_c,
            "checkout",
            "POST /checkout",
            "SERVER",
            slow + 20,
            checkout_fails,
            "downstream call failed",
        )
        co_i = span("co-i", co, "checkout", "GET inventory", "CLIENT", 8, inventory_fails)
        span("inv", co_i, "inventory", "GET /stock", "SERVER", 6, inventory_fails, "stock db busy")
        co_p = span("co-p", co, "checkout", "POST payments", "CLIENT", slow, payments_fails)
        pay_message = "ledger unavailable" if ledger_fails else "card processor timeout"
        pay = span(
            "pay", co_p, "payments", "POST /charge", "SERVER", slow - 5, payments_fails, pay_message
        )
        pay_l = span("pay-l", pay, "payments", "POST ledger", "CLIENT", 12, ledger_fails)
        span(
            "led",
            pay_l,
            "ledger",
            "POST /entries",
            "SERVER",
            10,
            ledger_fails,
            "connection pool exhausted",
        )
    return rows


def write_spans(settings: Settings, tenant: str, rows: list[dict[str, Any]]) -> None:
    table = ensure_table(open_catalog(settings), tenant, "spans")
    schema = arrow_schema_for("spans")
    table.append(pa.Table.from_pylist(rows, schema=schema))


@dataclass
class ApiServer:
    """Query daemon plus resource API on settings.queryd.port, in this process.

    ``delay`` slows every SQL request and every resource write down, so a test can kill a
    worker in mid-step; ``requests`` records (method, path) of each as it arrives.
    """

    settings: Settings
    delay: float = 0.0
    requests: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.queryd.port}"

    def _app(self) -> web.Application:
        from queryd.server import create_app

        @web.middleware
        async def slow(request: web.Request, handler: Any) -> web.StreamResponse:
            self.requests.append((request.method, request.path))
            if request.path == "/v1/query" or request.method in ("POST", "PATCH"):
                await asyncio.sleep(self.delay)
            return await handler(request)

        app = create_app(self.settings)
        app.middlewares.append(slow)
        served = {r.canonical for r in app.router.resources()}
        if "/v1/{path}" not in served and not any("tenants" in c for c in served):
            store = open_store(self.settings)
            app.add_routes(routes(store, Authenticator.from_settings(self.settings)))
        return app

    async def _start(self) -> None:
        self._runner = web.AppRunner(self._app(), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.settings.queryd.port).start()

    def __enter__(self) -> ApiServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


def open_investigation(
    url: str, tenant: str, service: str = "checkout", investigation_id: str = INVESTIGATION_ID
) -> str:
    """The anomalies a detector would have raised, and the investigation the intake opens."""
    client = ResourceClient(url, tenant=tenant)
    inv = client.create(
        f"tenants/{tenant}/investigations",
        {
            "title": f"error rate of {service} 40.0% (expected 2.0%)",
            "service": service,
            "severity": "high",
            "state": "OPEN",
            "first_anomaly_time": T0.isoformat().replace("+00:00", "Z"),
            "last_anomaly_time": (T0 + dt.timedelta(seconds=10)).isoformat(),
        },
        resource_id=investigation_id,
    )
    names = []
    for n, (kind, observed, expected) in enumerate(
        [("error_rate", 0.4, 0.02), ("latency", 1520.0, 60.0)]
    ):
        start = T0 + dt.timedelta(seconds=10 * n)
        anomaly = client.create(
            f"tenants/{tenant}/anomalies",
            {
                "service": service,
                "kind": kind,
                "signal": "spans",
                "window_start": start.isoformat(),
                "window_end": (start + dt.timedelta(seconds=10)).isoformat(),
                "observed": observed,
                "expected": expected,
                "severity": "high",
                "investigation": inv["name"],
            },
            resource_id=f"a{n}-{service}",
        )
        names.append(anomaly["name"])
    client.update(
        inv["name"], {"anomalies": names, "anomaly_count": 2}, ["anomalies", "anomaly_count"]
    )
    return str(inv["name"])


@contextmanager
def incident(
    settings: Settings, tenant: str, root: str = "payments", **api: Any
) -> Iterator[ApiServer]:
    """The lake written, the API serving, the investigation open."""
    write_spans(settings, tenant, incident_spans(root))
    with ApiServer(settings, **api) as server:
        open_investigation(server.url, tenant)
        yield server


def env_for(settings: Settings) -> dict[str, str]:
    """The environment of an ``emberlake`` child process with these settings and nothing else."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMBERLAKE_", "ANTHROPIC_"))}
    env.update(to_env(settings))
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class WorkerProcess:
    """``emberlake agents`` as a child process, killable at any moment."""

    settings: Settings
    log_path: Any
    proc: Any = None

    def start(self) -> WorkerProcess:
        import subprocess
        import sys

        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it until it dies
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "emberlake.cli", "agents"],
            env=env_for(self.settings),
            cwd=str(self.settings.data_path.parent),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        return self

    def kill(self) -> None:
        import signal

        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=10)

    def stop(self) -> int:
        import signal

        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return int(self.proc.wait(timeout=30))

    def logs(self) -> str:
        from pathlib import Path

        return Path(self.log_path).read_text(errors="replace")[-5000:]


def wait_until(check: Any, timeout: float, what: str, logs: Any = None) -> Any:
    """Poll ``check`` until it returns something true; fail with ``what`` (and logs) if not."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}\n{logs() if logs else ''}")
