"""The resource API over HTTP (aiohttp), plus the investigations web page.

Routes (the query daemon mounts them next to its own ``/v1/query``)::

    GET    /v1/{name}                      Get     tenants/t/investigations/abc
    GET    /v1/{collection}                List    ?filter=&order_by=&page_size=&page_token=
    POST   /v1/{collection}                Create  ?{singular}_id=  (e.g. investigation_id)
    PATCH  /v1/{name}                      Update  ?update_mask=a,b.c  (etag in the body)
    DELETE /v1/{name}                      Delete  ?etag=&force=true
    GET    /ui                             open investigations, their anomalies and charts

A List answers ``{"<collection>": [...], "next_page_token": "...", "total_size": n}``. Errors
answer ``{"error": {"code": 404, "message": "...", "status": "NOT_FOUND"}}``: 400
INVALID_ARGUMENT (bad name, filter, mask, token or body), 400 FAILED_PRECONDITION, 401
UNAUTHENTICATED, 403 PERMISSION_DENIED (another tenant's name), 404 NOT_FOUND, 409
ALREADY_EXISTS, 409 ABORTED (etag mismatch; AIP-154 allows ABORTED or FAILED_PRECONDITION, we
use ABORTED so a client can tell "re-read and retry" from other refusals).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from agents.resources.names import parse
from agents.resources.service import ResourceService
from agents.resources.store import ResourceStore
from emberlake.errors import (
    AlreadyExists,
    EmberlakeError,
    EtagMismatch,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    TenantError,
    Unauthenticated,
)
from emberlake.tenancy import TENANT_HEADER, Authenticator

log = logging.getLogger(__name__)

#: error class -> (HTTP status, canonical code name); first match wins.
_STATUS: tuple[tuple[type[Exception], int, str], ...] = (
    (Unauthenticated, 401, "UNAUTHENTICATED"),
    (TenantError, 403, "PERMISSION_DENIED"),
    (NotFound, 404, "NOT_FOUND"),
    (AlreadyExists, 409, "ALREADY_EXISTS"),
    (EtagMismatch, 409, "ABORTED"),
    (FailedPrecondition, 400, "FAILED_PRECONDITION"),
    (InvalidArgument, 400, "INVALID_ARGUMENT"),
)


def status_of(exc: Exception) -> tuple[int, str]:
    """The HTTP status and canonical code name for an error."""
    return next(
        ((code, status) for kind, code, status in _STATUS if isinstance(exc, kind)),
        (500, "INTERNAL"),
    )


def error_response(exc: Exception) -> web.Response:
    code, status = status_of(exc)
    body = {"error": {"code": code, "message": str(exc), "status": status}}
    return web.json_response(body, status=code)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _query_int(request: web.Request, key: str) -> int | None:
    raw = request.query.get(key)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise InvalidArgument(f"{key} must be an integer, got {raw!r}") from None


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json() if request.can_read_body else {}
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidArgument("the request body must be a JSON object")
    return body


class ResourceHandlers:
    """aiohttp handlers for the standard methods, checking the caller's tenant."""

    def __init__(self, store: ResourceStore, authenticator: Authenticator):
        self.service = ResourceService(store)
        self.auth = authenticator

    def caller(self, request: web.Request) -> str:
        headers = {k.lower(): v for k, v in request.headers.items()}
        return self.auth.tenant_for(headers)

    def _path(self, request: web.Request) -> str:
        path = request.match_info["path"]
        name = parse(path)
        tenant = self.caller(request)
        if name.tenant != tenant:
            raise TenantError(f"you act for tenant {tenant!r} and may not touch {path!r}")
        return path

    def wrap(self, fn: Handler) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            try:
                return await fn(request)
            except EmberlakeError as exc:
                return error_response(exc)
            except Exception as exc:  # noqa: BLE001 - the client gets a clean 500, we get a log
                log.exception("resource request %s %s failed", request.method, request.path)
                return error_response(exc)

        return handler

    async def get(self, request: web.Request) -> web.StreamResponse:
        path = self._path(request)
        name = parse(path)
        if hasattr(name, "id"):
            return web.json_response(await asyncio.to_thread(self.service.get, path))
        page = await asyncio.to_thread(
            self.service.list,
            path,
            request.query.get("filter", ""),
            request.query.get("order_by", ""),
            _query_int(request, "page_size"),
            request.query.get("page_token", ""),
        )
        return web.json_response(
            {
                name.collection.plural: page.resources,
                "next_page_token": page.next_page_token,
                "total_size": page.total_size,
            }
        )

    async def create(self, request: web.Request) -> web.StreamResponse:
        path = self._path(request)
        name = parse(path)
        if hasattr(name, "id"):
            raise InvalidArgument(f"POST goes to a collection, not to the resource {path!r}")
        body = await _json_body(request)
        resource_id = request.query.get(f"{name.collection.singular}_id") or None
        created = await asyncio.to_thread(self.service.create, path, body, resource_id)
        return web.json_response(created, status=200)

    async def update(self, request: web.Request) -> web.StreamResponse:
        path = self._path(request)
        body = await _json_body(request)
        raw_mask = request.query.get("update_mask")
        mask = None if raw_mask is None else [p for p in raw_mask.split(",") if p.strip()]
        updated = await asyncio.to_thread(self.service.update, path, body, mask)
        return web.json_response(updated)

    async def delete(self, request: web.Request) -> web.StreamResponse:
        path = self._path(request)
        force = request.query.get("force", "").lower() in ("1", "true", "yes")
        etag = request.query.get("etag") or None
        await asyncio.to_thread(self.service.delete, path, etag, force)
        return web.json_response({})

    async def ui(self, request: web.Request) -> web.StreamResponse:
        from agents.web.page import load_page_data, render_page

        headers = {k.lower(): v for k, v in request.headers.items()}
        if not self.auth.enabled and request.query.get("tenant"):
            headers[TENANT_HEADER] = request.query["tenant"]
        tenant = self.auth.tenant_for(headers)
        data = await asyncio.to_thread(load_page_data, self.service, tenant)
        return web.Response(text=render_page(tenant, data), content_type="text/html")


def routes(store: ResourceStore, authenticator: Authenticator) -> list[web.RouteDef]:
    """The route table of the resource API and the web page, for any aiohttp application."""
    h = ResourceHandlers(store, authenticator)
    pattern = "/v1/{path:tenants/.+}"
    return [
        web.get(pattern, h.wrap(h.get)),
        web.post(pattern, h.wrap(h.create)),
        web.patch(pattern, h.wrap(h.update)),
        web.delete(pattern, h.wrap(h.delete)),
        web.get("/ui", h.wrap(h.ui)),
    ]


def resource_app(store: ResourceStore, authenticator: Authenticator) -> web.Application:
    """A stand-alone application serving only the resource API and the page."""
    app = web.Application()
    app.add_routes(routes(store, authenticator))
    return app
