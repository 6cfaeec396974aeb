"""``emberlake receiver`` and ``emberlake demo``: the intake side of the command line."""

from __future__ import annotations

import asyncio
import logging
import signal

import click

from emberlake.cli import emit, settings_of
from emberlake.errors import BrokerError
from emberlake.settings import Settings
from ingest.kafka import ensure_topics
from ingest.topics import Topics

log = logging.getLogger(__name__)


async def _serve_until_signalled(settings: Settings) -> None:
    from ingest.otlp_receiver import serve

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await serve(settings, stop=stop)


@click.command("receiver")
@click.pass_context
def receiver_command(ctx: click.Context) -> None:
    """Receive OTLP over gRPC and HTTP and produce it to Kafka, until SIGINT or SIGTERM."""
    settings = settings_of(ctx)
    topics = Topics(settings.kafka.topic_prefix)
    try:
        ensure_topics(settings, [*topics.all_signals, topics.anomalies], timeout=10.0)
    except BrokerError as exc:
        # Start anyway: clients are told to retry (UNAVAILABLE / 503) until the broker is back.
        log.warning("could not check the topics (%s); starting anyway", exc)
    asyncio.run(_serve_until_signalled(settings))


@click.command("demo")
@click.option(
    "--endpoint",
    default=None,
    help="OTLP/gRPC endpoint host:port (default: the receiver's host and gRPC port).",
)
@click.option("--seconds", default=10.0, show_default=True, help="Stop after this many seconds.")
@click.option("--traces", type=int, default=None, help="Stop after this many traces.")
@click.option("--rate", default=20.0, show_default=True, help="Traces per second.")
@click.option("--tenant", default=None, help="Tenant to send as (x-emberlake-tenant).")
@click.option("--token", default=None, help="Bearer token, when the receiver has auth on.")
@click.option("--seed", type=int, default=None, help="Random seed, for repeatable data.")
@click.option(
    "--incident-after",
    type=float,
    default=None,
    help="Make the payment provider time out from this many seconds in (an incident for the "
    "detectors and agents to find; give --seconds long enough for baselines to warm up).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def demo_command(
    ctx: click.Context,
    endpoint: str | None,
    seconds: float,
    traces: int | None,
    rate: float,
    tenant: str | None,
    token: str | None,
    seed: int | None,
    incident_after: float | None,
    as_json: bool,
) -> None:
    """Send a small shop's traces, logs and metrics through the OpenTelemetry SDK."""
    from ingest.demo import run_demo

    r = settings_of(ctx).receiver
    target = endpoint or f"{r.host}:{r.grpc_port}"
    report = run_demo(
        target,
        tenant=tenant,
        token=token,
        traces=traces,
        seconds=seconds,
        rate=rate,
        seed=seed,
        incident_after=incident_after,
    )
    data = {"endpoint": target, **vars(report), "ok": report.ok}
    text = (
        f"sent {report.traces} traces to {target} in {report.seconds:.1f}s"
        f" ({report.failed_payments} with a failed payment):"
        f" {report.spans_acked} spans and {report.logs_acked} log records acknowledged"
    )
    if not report.ok:
        text += (
            f"; {report.spans_failed} spans and {report.logs_failed} log records were NOT"
            " accepted: is the receiver running there (emberlake up)?"
        )
    emit(data, as_json, text)
    if not report.ok:
        ctx.exit(1)
