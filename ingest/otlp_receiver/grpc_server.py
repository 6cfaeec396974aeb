"""OTLP/gRPC: the logs, trace and metrics collector services on grpc.aio.

The services are registered as generic handlers rather than through the generated
``add_*Servicer_to_server`` helpers: those deserialize every request before the servicer sees
it, which would force the receiver to serialize it again for Kafka. Here the request arrives as
the raw bytes the client sent (grpcio has already undone any gzip), so a one-service request
reaches Kafka without being re-encoded. Method paths, request and response types are the ones
of ``opentelemetry.proto.collector.*.v1``.
"""

from __future__ import annotations

import logging

import grpc
from google.protobuf.message import Message

from emberlake.errors import ConfigError, EmberlakeError
from ingest.otlp_receiver.handler import ExportHandler
from ingest.otlp_receiver.signals import OTLP_SIGNALS, OtlpSignal
from ingest.otlp_receiver.status import failure_for

log = logging.getLogger(__name__)


def _metadata(context: grpc.aio.ServicerContext) -> dict[str, str]:
    # Binary (-bin) metadata carries bytes; nothing the receiver reads is binary.
    return {
        key.lower(): value
        for key, value in (context.invocation_metadata() or ())
        if isinstance(value, str)
    }


class OtlpGrpcServer:
    """The three OTLP collector services on one grpc.aio server."""

    def __init__(self, handler: ExportHandler, host: str, port: int, max_request_bytes: int):
        self.handler = handler
        self.host = host
        self.requested_port = port
        self.port = port
        self._server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", max_request_bytes),
                # Without this a second receiver could bind the same port and share traffic.
                ("grpc.so_reuseport", 0),
            ]
        )
        self._server.add_generic_rpc_handlers([self._service(s) for s in OTLP_SIGNALS])

    def _service(self, signal: OtlpSignal) -> grpc.GenericRpcHandler:
        handler = self.handler

        async def export(request: bytes, context: grpc.aio.ServicerContext) -> Message:
            try:
                tenant = handler.tenant(_metadata(context))
                decoded = await handler.export(signal, tenant, request, "protobuf")
            except EmberlakeError as exc:
                failure = failure_for(exc)
            else:
                return decoded.response()
            if failure.http_status >= 500:
                log.warning("%s export failed: %s", signal.name, failure.message)
            await context.abort(
                failure.grpc_code, failure.message, trailing_metadata=failure.grpc_trailers()
            )
            raise AssertionError("unreachable: abort raises")

        method = grpc.unary_unary_rpc_method_handler(
            export,
            request_deserializer=None,
            response_serializer=signal.response_type.SerializeToString,
        )
        return grpc.method_handlers_generic_handler(signal.grpc_service, {"Export": method})

    async def start(self) -> int:
        """Bind and start serving; return the bound port (useful when asked for port 0)."""
        address = f"{self.host}:{self.requested_port}"
        try:
            self.port = self._server.add_insecure_port(address)
        except RuntimeError as exc:
            raise ConfigError(
                f"cannot listen for OTLP/gRPC on {address} ({exc}): stop what uses the port or"
                " set EMBERLAKE_RECEIVER_GRPC_PORT"
            ) from None
        await self._server.start()
        log.info("OTLP/gRPC listening on %s:%d", self.host, self.port)
        return self.port

    async def stop(self, grace: float) -> None:
        """Refuse new calls, give calls in flight ``grace`` seconds to finish."""
        await self._server.stop(grace)
