"""``emberlake journal status|replay``: the receiver's ack journal from the command line."""

from __future__ import annotations

import dataclasses

import click

from emberlake.cli import emit, settings_of
from emberlake.errors import BrokerError
from emberlake.settings import Settings


@click.group("journal", short_help="The receiver's ack journal: status, replay.")
def journal_group() -> None:
    """The receiver's ack journal (<data_dir>/receiver/journal): what it holds, and producing
    what the lake lacks into a restarted broker (`emberlake up` and `emberlake broker` do that
    by themselves when they start)."""


@journal_group.command("status", short_help="What the journal holds and would replay.")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.pass_context
def status_command(ctx: click.Context, as_json: bool) -> None:
    """Segments, bytes, records and the oldest one's age; per broker cluster, how many records
    the lake's marks already cover; and how many a replay would produce again."""
    from ingest.journal import journal_dir
    from ingest.journal.status import journal_status

    settings = settings_of(ctx)
    status = journal_status(settings, journal_dir(settings), _current_cluster(settings))
    emit(status.as_dict(), as_json, status.text())


def _current_cluster(settings: Settings) -> str | None:
    """The broker's cluster id; None when it does not run (a broker started later is a new
    cluster, so every cluster's entries count)."""
    from emberlake.broker import wait_for_port
    from ingest.kafka import cluster_id

    try:
        if settings.embedded_broker:
            # Nothing listening: say so at once, not after the client's retries.
            wait_for_port("127.0.0.1", settings.kafka.embedded_port, timeout=0.0)
        return cluster_id(settings, timeout=3.0)
    except BrokerError:
        return None


@journal_group.command("replay", short_help="Produce what the lake lacks into the broker.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def replay_command(ctx: click.Context, as_json: bool) -> None:
    """Produce into the configured broker what the journal holds of earlier broker clusters and
    the lake lacks, as `emberlake up` and `emberlake broker` do when they start.

    Run it once the lake writer of the old broker has stopped (it exits by itself, having
    committed what it read, when it finds the new cluster), and best before it starts again:
    a starting writer deletes the old cluster's checkpoints, and without them a resent request
    the old writer had recognised may be stored twice.
    """
    from ingest.journal import journal_dir, replay_journal
    from ingest.kafka import cluster_id

    settings = settings_of(ctx)
    report = replay_journal(settings, journal_dir(settings), cluster_id(settings))
    emit(dataclasses.asdict(report), as_json, str(report))
