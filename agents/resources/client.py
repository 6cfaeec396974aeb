"""A small Python client of the resource API (used by the CLI and by agents)."""

from __future__ import annotations

import builtins
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

from agents.resources.names import parse
from emberlake.errors import (
    AlreadyExists,
    EtagMismatch,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    QuerydUnavailable,
    ResourceError,
    TenantError,
    Unauthenticated,
)
from emberlake.tenancy import TENANT_HEADER

_ERRORS: dict[str, type[Exception]] = {
    "INVALID_ARGUMENT": InvalidArgument,
    "FAILED_PRECONDITION": FailedPrecondition,
    "NOT_FOUND": NotFound,
    "ALREADY_EXISTS": AlreadyExists,
    "ABORTED": EtagMismatch,
    "PERMISSION_DENIED": TenantError,
    "UNAUTHENTICATED": Unauthenticated,
}


class ResourceClient:
    """Get, List, Create, Update and Delete resources over HTTP."""

    def __init__(
        self,
        base_url: str,
        tenant: str | None = None,
        token: str | None = None,
        timeout: float = 30.0,
    ):
        self.base_url = base_url.rstrip("/")
        self.tenant = tenant
        self.token = token
        self.timeout = timeout

    def _request(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        query = {k: str(v) for k, v in (params or {}).items() if v not in (None, "")}
        url = f"{self.base_url}/v1/{urllib.parse.quote(path.strip('/'), safe='/')}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        headers = {"accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["content-type"] = "application/json"
        if self.tenant:
            headers[TENANT_HEADER] = self.tenant
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                result: dict[str, Any] = json.loads(resp.read() or b"{}")
                return result
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                error = json.loads(raw)["error"]
                kind = _ERRORS.get(error.get("status"), ResourceError)
                message = error.get("message") or str(exc)
            except (ValueError, KeyError, TypeError):
                kind, message = ResourceError, f"HTTP {exc.code}: {raw[:200]!r}"
            raise kind(message) from None
        except (urllib.error.URLError, OSError) as exc:
            raise QuerydUnavailable(
                f"cannot reach the resource API at {self.base_url}: {exc}; is the query daemon"
                " running (emberlake up / emberlake queryd)?"
            ) from None

    def get(self, name: str) -> dict[str, Any]:
        return self._request("GET", name)

    def list(
        self,
        collection: str,
        filter: str = "",
        order_by: str = "",
        page_size: int | None = None,
        page_token: str = "",
    ) -> dict[str, Any]:
        """One page: ``{"<collection>": [...], "next_page_token": ..., "total_size": ...}``."""
        params = {
            "filter": filter,
            "order_by": order_by,
            "page_size": page_size,
            "page_token": page_token,
        }
        return self._request("GET", collection, params)

    def list_all(self, collection: str, filter: str = "", order_by: str = "") -> Iterator[dict]:
        """Every matching resource, following page tokens."""
        plural = parse(collection).collection.plural
        token = ""
        while True:
            page = self.list(collection, filter, order_by, page_size=1000, page_token=token)
            yield from page.get(plural, [])
            token = page.get("next_page_token") or ""
            if not token:
                return

    def create(
        self, collection: str, body: dict[str, Any], resource_id: str | None = None
    ) -> dict[str, Any]:
        singular = parse(collection).collection.singular
        return self._request("POST", collection, {f"{singular}_id": resource_id}, body)

    def update(
        self, name: str, body: dict[str, Any], update_mask: builtins.list[str] | None = None
    ) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if update_mask is not None:
            params["update_mask"] = ",".join(update_mask)
        return self._request("PATCH", name, params, body)

    def delete(self, name: str, etag: str | None = None, force: bool = False) -> None:
        self._request("DELETE", name, {"etag": etag, "force": "true" if force else None})
