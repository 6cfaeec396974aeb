"""Running the demo: check a receiver answers, then send shop traffic at a steady rate."""

from __future__ import annotations

import time

import grpc

from emberlake.errors import ReceiverUnavailable
from ingest.demo.shop import Shop
from ingest.demo.telemetry import DemoReport


def wait_for_receiver(endpoint: str, timeout: float = 5.0) -> None:
    """Fail fast, with a useful message, when nothing answers OTLP/gRPC at ``endpoint``."""
    target = endpoint.split("://", 1)[-1]
    with grpc.insecure_channel(target) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            raise ReceiverUnavailable(
                f"no OTLP/gRPC receiver answers at {target} after {timeout:.0f}s: start one with"
                " `emberlake up` (or `emberlake receiver`), or pass --endpoint"
            ) from None


def run_demo(
    endpoint: str,
    *,
    tenant: str | None = None,
    token: str | None = None,
    traces: int | None = None,
    seconds: float = 10.0,
    rate: float = 20.0,
    seed: int | None = None,
    incident_after: float | None = None,
) -> DemoReport:
    """Send shop telemetry to an OTLP/gRPC endpoint for ``seconds`` or until ``traces`` sent.

    With ``incident_after``, the payment provider starts timing out that many seconds in, so
    payments fails slowly and checkout and frontend fail with it: what the detectors and the
    investigator agents are for."""
    wait_for_receiver(endpoint)
    headers: dict[str, str] = {}
    if tenant:
        headers["x-emberlake-tenant"] = tenant
    if token:
        headers["authorization"] = f"Bearer {token}"
    shop = Shop(endpoint, headers, seed)
    started = time.monotonic()
    interval = 1.0 / rate if rate > 0 else 0.0
    sent = 0
    while (traces is None or sent < traces) and time.monotonic() - started < seconds:
        shop.incident = incident_after is not None and time.monotonic() - started >= incident_after
        shop.request()
        sent += 1
        pause = started + sent * interval - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    report = shop.shutdown()
    report.seconds = time.monotonic() - started
    return report
