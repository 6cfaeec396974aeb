"""A small Python client of the query daemon's HTTP API (standard library only).

    client = QueryClient("http://127.0.0.1:8080", tenant="acme")
    client.query("SELECT service_name, count(*) FROM spans GROUP BY 1")["rows"]

Server errors come back as the matching emberlake errors, carrying the server's message.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from emberlake.errors import (
    EmberlakeError,
    InvalidSQL,
    NotFound,
    QuerydUnavailable,
    QueryError,
    QueryRejected,
    QueryTimeout,
    TenantError,
    Unauthenticated,
)
from emberlake.tenancy import TENANT_HEADER

#: Server error code -> the error raised here.
ERRORS: dict[str, type[EmberlakeError]] = {
    "rejected": QueryRejected,
    "invalid_sql": InvalidSQL,
    "bad_request": QueryError,
    "not_found": NotFound,
    "timeout": QueryTimeout,
    "unauthenticated": Unauthenticated,
    "forbidden": TenantError,
}


class QueryClient:
    """Talks to one query daemon as one tenant (by header, or by bearer token)."""

    def __init__(
        self,
        base_url: str,
        tenant: str | None = None,
        token: str | None = None,
        timeout: float = 120.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.tenant = tenant
        self.token = token
        self.timeout = timeout

    def query(self, sql: str, max_rows: int | None = None) -> dict[str, Any]:
        """Run SQL; returns {"columns", "rows", "row_count", "elapsed_ms", "truncated"}."""
        payload: dict[str, Any] = {"sql": sql}
        if max_rows is not None:
            payload["max_rows"] = max_rows
        result: dict[str, Any] = json.loads(self._request("POST", "/v1/query", payload))
        return result

    def query_raw(self, sql: str, accept: str) -> tuple[bytes, dict[str, str]]:
        """Run SQL asking for another media type (``text/csv``, Arrow stream): body, headers."""
        headers: dict[str, str] = {}
        body = self._request("POST", "/v1/query", {"sql": sql}, accept=accept, out=headers)
        return body, headers

    def tables(self) -> list[dict[str, Any]]:
        """Descriptions of the tenant's tables."""
        tables: list[dict[str, Any]] = json.loads(self._request("GET", "/v1/tables"))["tables"]
        return tables

    def table(self, name: str) -> dict[str, Any]:
        """Description of one table (columns with provenance, rows, files, partitioning)."""
        path = "/v1/tables/" + urllib.parse.quote(name, safe="")
        table: dict[str, Any] = json.loads(self._request("GET", path))
        return table

    def health(self) -> bool:
        """True if the daemon answers its health check."""
        try:
            return bool(json.loads(self._request("GET", "/healthz")).get("status") == "ok")
        except QuerydUnavailable:
            return False

    def _request(
        self,
        method: str,
        path: str,
        payload: dict[str, Any] | None = None,
        accept: str = "application/json",
        out: dict[str, str] | None = None,
    ) -> bytes:
        headers = {"Accept": accept}
        data = None
        if payload is not None:
            data = json.dumps(payload).encode()
            headers["Content-Type"] = "application/json"
        if self.tenant:
            headers[TENANT_HEADER] = self.tenant
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.base_url + path, data, headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                if out is not None:
                    out.update({k.lower(): v for k, v in response.headers.items()})
                body: bytes = response.read()
                return body
        except urllib.error.HTTPError as exc:
            raise _server_error(exc) from None
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            raise QuerydUnavailable(
                f"query daemon not reachable at {self.base_url} ({reason}); "
                "start it with `emberlake up` or `emberlake queryd`"
            ) from None


def _server_error(exc: urllib.error.HTTPError) -> EmberlakeError:
    raw = exc.read()
    try:
        error = json.loads(raw)["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        code, message = "", raw.decode(errors="replace") or f"HTTP {exc.code}"
    return ERRORS.get(code, QueryError)(message)
