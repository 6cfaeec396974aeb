"""How receiver errors look on the wire: gRPC status codes, HTTP statuses, google.rpc.Status.

One table, so gRPC and HTTP clients are told the same thing. OTLP clients retry UNAVAILABLE and
HTTP 503 (honouring the suggested delay); they drop data refused with any other status.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2

from emberlake.errors import (
    BrokerError,
    EmberlakeError,
    InvalidRequest,
    RequestTooLarge,
    TenantError,
    Unauthenticated,
    UnsupportedMediaType,
)

#: Seconds an OTLP client is asked to wait before retrying when the broker cannot take data.
RETRY_AFTER_SECONDS = 2
#: Trailing metadata keys: the standard rich status, and the key OTLP exporters read RetryInfo
#: from directly (the OpenTelemetry Python exporter does).
STATUS_DETAILS_KEY = "grpc-status-details-bin"
RETRY_INFO_KEY = "google.rpc.retryinfo-bin"


@dataclass(frozen=True)
class Failure:
    """A refused request, as both protocols report it."""

    grpc_code: grpc.StatusCode
    http_status: int
    message: str
    #: Set when the client should retry after this many seconds.
    retry_after: int | None = None

    def rpc_status(self) -> status_pb2.Status:
        """The google.rpc.Status body: code, message and, when retryable, RetryInfo."""
        status = status_pb2.Status(code=self.grpc_code.value[0], message=self.message)
        if self.retry_after is not None:
            status.details.add().Pack(self.retry_info())
        return status

    def retry_info(self) -> error_details_pb2.RetryInfo:
        return error_details_pb2.RetryInfo(
            retry_delay=duration_pb2.Duration(seconds=self.retry_after or 0)
        )

    def grpc_trailers(self) -> tuple[tuple[str, bytes], ...]:
        if self.retry_after is None:
            return ()
        return (
            (STATUS_DETAILS_KEY, self.rpc_status().SerializeToString()),
            (RETRY_INFO_KEY, self.retry_info().SerializeToString()),
        )


_TABLE: tuple[tuple[type[EmberlakeError], grpc.StatusCode, int], ...] = (
    # Most specific first: RequestTooLarge and UnsupportedMediaType are InvalidRequests,
    # Unauthenticated is a TenantError.
    (RequestTooLarge, grpc.StatusCode.RESOURCE_EXHAUSTED, 413),
    (UnsupportedMediaType, grpc.StatusCode.INVALID_ARGUMENT, 415),
    (InvalidRequest, grpc.StatusCode.INVALID_ARGUMENT, 400),
    (Unauthenticated, grpc.StatusCode.UNAUTHENTICATED, 401),
    (TenantError, grpc.StatusCode.PERMISSION_DENIED, 403),
    (BrokerError, grpc.StatusCode.UNAVAILABLE, 503),
)


def failure_for(exc: EmberlakeError) -> Failure:
    """How to report an error: anything unforeseen is INTERNAL / 500."""
    for kind, code, http_status in _TABLE:
        if isinstance(exc, kind):
            retry = RETRY_AFTER_SECONDS if code == grpc.StatusCode.UNAVAILABLE else None
            return Failure(code, http_status, str(exc), retry)
    return Failure(grpc.StatusCode.INTERNAL, 500, str(exc))
