"""OTLP/HTTP: ``POST /v1/{logs,traces,metrics}`` on aiohttp, plus ``GET /healthz``.

Bodies are protobuf (``application/x-protobuf``) or OTLP/JSON (``application/json``), gzip or
not; the answer uses the request's encoding. aiohttp's own request decompression is switched off
so that gzip bodies go through the receiver's bounded inflater (see
:mod:`ingest.otlp_receiver.body`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web
from google.protobuf.message import Message

from emberlake.errors import ConfigError, EmberlakeError, UnsupportedMediaType
from ingest.otlp_receiver.body import check_size, decode_content
from ingest.otlp_receiver.export import Encoding
from ingest.otlp_receiver.handler import ExportHandler
from ingest.otlp_receiver.otlp_json import to_json
from ingest.otlp_receiver.signals import OTLP_SIGNALS, OtlpSignal
from ingest.otlp_receiver.status import Failure, failure_for

log = logging.getLogger(__name__)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_ENCODINGS: dict[str, Encoding] = {PROTOBUF: "protobuf", JSON: "json"}
_READ_CHUNK = 256 * 1024


def _encode(message: Message, encoding: Encoding) -> web.Response:
    if encoding == "json":
        return web.Response(body=to_json(message), content_type=JSON)
    return web.Response(body=message.SerializeToString(), content_type=PROTOBUF)


def _failure_response(failure: Failure, encoding: Encoding) -> web.Response:
    response = _encode(failure.rpc_status(), encoding)
    response.set_status(failure.http_status)
    if failure.retry_after is not None:
        response.headers["Retry-After"] = str(failure.retry_after)
    return response


async def _read_body(request: web.Request, limit: int) -> bytes:
    """Read the (still encoded) body, refusing it as soon as it passes the limit."""
    if request.content_length is not None:
        check_size(request.content_length, limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(_READ_CHUNK):
        size += len(chunk)
        check_size(size, limit)
        chunks.append(chunk)
    return b"".join(chunks)


class OtlpHttpServer:
    """The OTLP/HTTP endpoints on one aiohttp site."""

    def __init__(
        self,
        handler: ExportHandler,
        host: str,
        port: int,
        max_request_bytes: int,
        shutdown_grace: float = 10.0,
        health: Callable[[], dict[str, Any]] | None = None,
    ):
        """``health``: more fields for ``/healthz`` (the journal's counters, say)."""
        self.handler = handler
        self.health = health
        self.host = host
        self.port = port
        self.max_request_bytes = max_request_bytes
        self.shutdown_grace = shutdown_grace
        self.app = web.Application(client_max_size=max_request_bytes)
        for signal in OTLP_SIGNALS:
            self.app.router.add_post(signal.http_path, self._route(signal))
        self.app.router.add_get("/healthz", self._health)
        self._runner: web.AppRunner | None = None

    def _route(self, signal: OtlpSignal) -> Any:
        async def route(request: web.Request) -> web.StreamResponse:
            return await self._export(request, signal)

        return route

    async def _export(self, request: web.Request, signal: OtlpSignal) -> web.Response:
        encoding = _ENCODINGS.get(request.content_type)
        try:
            if encoding is None:
                raise UnsupportedMediaType(
                    f"content type {request.content_type!r} is not supported: send {PROTOBUF}"
                    f" or {JSON}"
                )
            tenant = self.handler.tenant({k.lower(): v for k, v in request.headers.items()})
            body = await _read_body(request, self.max_request_bytes)
            data = decode_content(
                body, request.headers.get("Content-Encoding"), self.max_request_bytes
            )
            decoded = await self.handler.export(signal, tenant, data, encoding)
        except EmberlakeError as exc:
            failure = failure_for(exc)
            if failure.http_status >= 500:
                log.warning("%s export failed: %s", signal.name, failure.message)
            return _failure_response(failure, encoding or "json")
        return _encode(decoded.response(), encoding)

    async def _health(self, request: web.Request) -> web.Response:
        extra = self.health() if self.health is not None else {}
        return web.json_response({"status": "ok", **self.handler.stats.as_dict(), **extra})

    async def start(self) -> int:
        """Bind and start serving; return the bound port (useful when asked for port 0)."""
        # auto_decompress off: gzip is inflated by the receiver, with a cap.
        self._runner = web.AppRunner(
            self.app,
            access_log=None,
            auto_decompress=False,
            shutdown_timeout=self.shutdown_grace,
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_port=False)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise ConfigError(
                f"cannot listen for OTLP/HTTP on {self.host}:{self.port} ({exc}): stop what uses"
                " the port or set EMBERLAKE_RECEIVER_HTTP_PORT"
            ) from None
        self.port = int(self._runner.addresses[0][1])
        log.info("OTLP/HTTP listening on %s:%d", self.host, self.port)
        return self.port

    async def stop(self) -> None:
        """Stop listening, let requests in flight finish within the shutdown grace."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
