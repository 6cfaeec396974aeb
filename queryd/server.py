"""The query daemon's HTTP API (aiohttp).

    POST /v1/query          {"sql": "..."} -> rows as JSON, Arrow IPC stream or CSV (by Accept)
    GET  /v1/tables         the caller's tables, described
    GET  /v1/tables/{name}  one table, described
    GET  /healthz           liveness

Errors are ``{"error": {"code", "message"}}``: 400 ``rejected`` / ``invalid_sql`` /
``bad_request``, 401 ``unauthenticated``, 403 ``forbidden``, 404 ``not_found``, 504 ``timeout``
(the daemon gave up on its own query; 408 would invite clients to resend it unchanged), 500
``query_failed`` / ``internal``. DuckDB work runs in a thread pool so the event loop stays free;
a query whose client disconnects is cancelled at once (logged as ``cancelled``), so an agent or
a person that gave up does not keep a pool thread busy until the timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web

from agents.resources import open_store as open_resource_store
from agents.resources import routes as resource_routes
from emberlake.errors import (
    EmberlakeError,
    InvalidSQL,
    LakeError,
    NotFound,
    QueryCancelled,
    QueryError,
    QueryRejected,
    QueryTimeout,
    TenantError,
    Unauthenticated,
)
from emberlake.settings import Settings
from emberlake.tenancy import Authenticator
from queryd.cancellation import Cancellation
from queryd.engine import DuckDBEngine, QueryResult
from queryd.metadata import describe_table, describe_tables
from queryd.querylog import JsonLinesQueryLog, QueryLog, QueryRecord, query_columns
from queryd.results import arrow_stream, csv_text, json_rows

log = logging.getLogger(__name__)

ARROW_STREAM = "application/vnd.apache.arrow.stream"
CSV = "text/csv"
JSON = "application/json"

T = TypeVar("T")

#: Error class -> (HTTP status, error code); the first matching class wins.
_STATUS: list[tuple[type[BaseException], int, str]] = [
    (Unauthenticated, 401, "unauthenticated"),
    (TenantError, 403, "forbidden"),
    (QueryRejected, 400, "rejected"),
    (InvalidSQL, 400, "invalid_sql"),
    (NotFound, 404, "not_found"),
    (QueryTimeout, 504, "timeout"),
    # nginx's "client closed request": nobody reads it, but the query log records the code.
    (QueryCancelled, 499, "cancelled"),
    (QueryError, 500, "query_failed"),
    (LakeError, 500, "query_failed"),
    (EmberlakeError, 500, "internal"),
]


def error_status(exc: BaseException) -> tuple[int, str]:
    """The HTTP status and error code an exception is answered with."""
    for kind, status, code in _STATUS:
        if isinstance(exc, kind):
            return status, code
    return 500, "internal"


def error_response(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


@dataclass
class Encoded:
    """A query's answer ready to send."""

    body: bytes
    content_type: str
    result: QueryResult
    headers: dict[str, str] = field(default_factory=dict)


def media_type(accept: str, requested: str | None = None) -> str:
    """The response format for an Accept header (or an explicit "format" in the request)."""
    wanted = (requested or "").lower()
    if wanted in {"arrow", ARROW_STREAM} or (not wanted and ARROW_STREAM in accept):
        return ARROW_STREAM
    if wanted in {"csv", CSV} or (not wanted and CSV in accept):
        return CSV
    return JSON


def encode(result: QueryResult, kind: str) -> Encoded:
    """Serialize a result as JSON, CSV or an Arrow stream (meta in headers for the latter two)."""
    if kind == ARROW_STREAM:
        body, content_type = arrow_stream(result.table), ARROW_STREAM
    elif kind == CSV:
        body, content_type = csv_text(result.table).encode(), "text/csv; charset=utf-8"
    else:
        doc = {
            "columns": [{"name": c.name, "type": c.type} for c in result.columns],
            "rows": json_rows(result.table),
            "row_count": result.row_count,
            "elapsed_ms": round(result.elapsed_ms, 1),
            "truncated": result.truncated,
        }
        body, content_type = json.dumps(doc, allow_nan=False).encode(), JSON
    headers = {
        "X-Emberlake-Row-Count": str(result.row_count),
        "X-Emberlake-Truncated": "true" if result.truncated else "false",
        "X-Emberlake-Elapsed-Ms": f"{result.elapsed_ms:.1f}",
    }
    return Encoded(body, content_type, result, headers)


class QuerydApp:
    """The handlers, bound to one engine, authenticator, query log and thread pool."""

    def __init__(
        self,
        settings: Settings,
        engine: DuckDBEngine | None = None,
        querylog: QueryLog | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine or DuckDBEngine(settings)
        self.querylog = querylog or JsonLinesQueryLog.from_settings(settings)
        self.auth = Authenticator.from_settings(settings)
        self.resources = open_resource_store(settings)
        self.pool = ThreadPoolExecutor(
            max_workers=max(1, settings.queryd.concurrency), thread_name_prefix="queryd"
        )

    def build(self) -> web.Application:
        app = web.Application(middlewares=[self._errors])
        app.add_routes(
            [
                web.post("/v1/query", self.query),
                web.get("/v1/tables", self.tables),
                web.get("/v1/tables/{name}", self.table),
                web.get("/healthz", self.health),
            ]
        )
        # The resource API (investigations, findings, approvals, ...) and its page share the
        # daemon's port and tenancy, so agents and people need one address.
        app.add_routes(resource_routes(self.resources, self.auth))
        app.on_cleanup.append(self._close)
        return app

    async def _close(self, app: web.Application) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.engine.close()
        self.resources.close()

    @web.middleware
    async def _errors(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        try:
            response: web.StreamResponse = await handler(request)
            return response
        except web.HTTPException:
            raise
        except Exception as exc:
            status, code = error_status(exc)
            if status == 500:
                log.exception("%s %s failed", request.method, request.path)
            return error_response(status, code, str(exc) or type(exc).__name__)

    def _tenant(self, request: web.Request) -> str:
        return self.auth.tenant_for({k.lower(): v for k, v in request.headers.items()})

    async def _offload(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    async def query(self, request: web.Request) -> web.Response:
        tenant = self._tenant(request)
        try:
            body = await request.json()
        except ValueError:
            return error_response(400, "bad_request", 'send a JSON body: {"sql": "SELECT ..."}')
        if not isinstance(body, dict) or not isinstance(body.get("sql"), str):
            return error_response(400, "bad_request", 'send a JSON body: {"sql": "SELECT ..."}')
        max_rows = body.get("max_rows")
        if max_rows is not None and (not isinstance(max_rows, int) or max_rows < 0):
            return error_response(400, "bad_request", "max_rows must be a non-negative integer")
        kind = media_type(request.headers.get("Accept", ""), body.get("format"))
        cancellation = Cancellation()
        running = asyncio.get_running_loop().run_in_executor(
            self.pool, self._execute, tenant, body["sql"], max_rows, kind, cancellation
        )
        encoded = await _unless_disconnected(request, running, cancellation)
        return web.Response(
            body=encoded.body,
            content_type=None,
            headers={"Content-Type": encoded.content_type, **encoded.headers},
        )

    def _execute(
        self,
        tenant: str,
        sql: str,
        max_rows: int | None,
        kind: str,
        cancellation: Cancellation | None = None,
    ) -> Encoded:
        """Check, run, encode and log one query (in a pool thread)."""
        started = time.perf_counter()
        record: dict[str, Any] = {"tenant": tenant, "sql": sql}
        try:
            checked = self.engine.check(tenant, sql)
            filters, groups = query_columns(checked.tree)
            record.update(tables=list(checked.tables), filter_columns=filters)
            record.update(group_by_columns=groups)
            result = self.engine.run(tenant, checked, max_rows, cancellation=cancellation)
            encoded = encode(result, kind)
            record.update(ok=True, rows=encoded.result.row_count)
            record.update(time_windows={t: round(w, 3) for t, w in result.time_windows.items()})
            return encoded
        except Exception as exc:
            record.update(ok=False, error=error_status(exc)[1])
            raise
        finally:
            record["elapsed_ms"] = round((time.perf_counter() - started) * 1000.0, 2)
            self._log(QueryRecord(**record))

    def _log(self, entry: QueryRecord) -> None:
        try:
            self.querylog.record(entry)
        except OSError:
            # Losing a log line must not fail the query it describes.
            log.warning("could not write the query log", exc_info=True)

    async def tables(self, request: web.Request) -> web.Response:
        tenant = self._tenant(request)
        described = await self._offload(describe_tables, self.engine.planner, tenant)
        return web.json_response({"tenant": tenant, "tables": described})

    async def table(self, request: web.Request) -> web.Response:
        tenant = self._tenant(request)
        name = request.match_info["name"]

        def describe() -> dict[str, Any]:
            return describe_table(name, self.engine.planner.load(tenant, name))

        return web.json_response(await self._offload(describe))

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})


#: How often a running query checks whether its client is still connected.
DISCONNECT_POLL_SECONDS = 0.25


async def _unless_disconnected(
    request: web.Request, running: asyncio.Future[T], cancellation: Cancellation
) -> T:
    """The query's result; if the client disconnects first, cancel the query and stop."""
    while True:
        done, _ = await asyncio.wait({running}, timeout=DISCONNECT_POLL_SECONDS)
        if done:
            return running.result()
        transport = request.transport
        if transport is None or transport.is_closing():
            cancellation.cancel("the client disconnected")
            # Wait for the pool thread to give the query up, so the log records it.
            with contextlib.suppress(QueryCancelled):
                await running
            raise QueryCancelled("the client disconnected")


def create_app(settings: Settings, engine: DuckDBEngine | None = None) -> web.Application:
    """The aiohttp application of the query daemon."""
    return QuerydApp(settings, engine).build()


def serve(settings: Settings) -> None:
    """Serve on settings.queryd.host:port until SIGINT or SIGTERM."""
    app = create_app(settings)
    q = settings.queryd
    log.info("queryd listening on http://%s:%d", q.host, q.port)
    web.run_app(app, host=q.host, port=q.port, print=None, access_log=None, handle_signals=True)


class QuerydThread:
    """The daemon on a background thread and its own event loop: for tests and embedding."""

    def __init__(self, settings: Settings, engine: DuckDBEngine | None = None) -> None:
        self.settings = settings
        self.engine = engine
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.settings.queryd.host}:{self.settings.queryd.port}"

    def start(self) -> QuerydThread:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)
        return self

    async def _start(self) -> None:
        self._runner = web.AppRunner(create_app(self.settings, self.engine), access_log=None)
        await self._runner.setup()
        q = self.settings.queryd
        await web.TCPSite(self._runner, q.host, q.port).start()

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> QuerydThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
