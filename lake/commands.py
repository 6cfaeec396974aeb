"""``emberlake writer``: run the lake writer until SIGINT/SIGTERM.

Other lake subcommands (``compact``, ``tables``, ``partitioning``) live beside this one.
"""

from __future__ import annotations

import logging
import signal
import threading

import click

log = logging.getLogger(__name__)


@click.command("writer")
@click.option(
    "--drain-seconds",
    type=float,
    default=20.0,
    show_default=True,
    help="On stop, keep writing what the topics still hold for up to this long.",
)
@click.pass_context
def writer_command(ctx: click.Context, drain_seconds: float) -> None:
    """Write the OTLP signal topics into the Iceberg lake, exactly once, until stopped."""
    from emberlake.cli import settings_of
    from ingest.kafka import ensure_emberlake_topics
    from lake.ingestor import build_ingestor

    settings = settings_of(ctx)
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("signal %d: finishing the current batch and stopping", signum)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    ensure_emberlake_topics(settings)
    ingestor = build_ingestor(settings)
    log.info(
        "lake writer: %s -> %s (group %s, cluster %s)",
        settings.bootstrap_servers,
        settings.warehouse,
        settings.lake.writer_group,
        ingestor.cluster_id,
    )
    ingestor.run(stop, drain_seconds=drain_seconds)
    log.info(
        "lake writer stopped after %d rows in %d commits",
        ingestor.committed_rows,
        ingestor.commits,
    )
