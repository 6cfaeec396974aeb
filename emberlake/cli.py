"""The one command-line entry point: ``emberlake <subcommand>``.

Subcommands live beside the code they run (``ingest/commands.py``, ``lake/commands.py``,
``queryd/commands.py``, ``agents/commands.py``) and are imported only when called, so that
``emberlake query`` does not pay for importing the gRPC server. Errors become exit codes here,
and only here.
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
from typing import Any

import click

from emberlake.errors import EmberlakeError
from emberlake.settings import Settings, load_settings

#: subcommand -> "module:attribute" of a click command.
COMMANDS: dict[str, str] = {
    "up": "emberlake.supervisor:up_command",
    "broker": "emberlake.supervisor:broker_command",
    "receiver": "ingest.commands:receiver_command",
    "demo": "ingest.commands:demo_command",
    "journal": "ingest.journal.commands:journal_group",
    "writer": "lake.commands:writer_command",
    "compact": "lake.commands:compact_command",
    "tables": "lake.commands:tables_command",
    "partitioning": "lake.commands:partitioning_command",
    "queryd": "queryd.commands:queryd_command",
    "query": "queryd.commands:query_command",
    "detectors": "agents.commands:detectors_command",
    "agents": "agents.commands:agents_command",
    "sessions": "agents.commands:sessions_command",
    "get": "agents.commands:get_command",
    "list": "agents.commands:list_command",
    "create": "agents.commands:create_command",
    "update": "agents.commands:update_command",
    "delete": "agents.commands:delete_command",
    "approve": "agents.commands:approve_command",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, _, attr = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                return None
            raise
        command: click.Command | None = getattr(module, attr, None)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EmberlakeError as exc:
            click.echo(f"emberlake: {exc}", err=True)
            ctx.exit(exc.exit_code)


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("aiokafka", "faust", "mode", "pyiceberg", "urllib3", "botocore", "httpx"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))


@click.group(cls=LazyGroup)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="TOML settings file (default: $EMBERLAKE_CONFIG or ./emberlake.toml).",
)
@click.pass_context
def cli(ctx: click.Context, config_file: str | None) -> None:
    """emberlake: OTLP in, Kafka through, Iceberg out, SQL and agents on top."""
    try:
        settings = load_settings(config_file=config_file)
    except EmberlakeError as exc:
        click.echo(f"emberlake: {exc}", err=True)
        ctx.exit(exc.exit_code)
    configure_logging(settings.log_level)
    ctx.obj = settings


def settings_of(ctx: click.Context) -> Settings:
    """The settings loaded by the root command."""
    settings: Settings = ctx.find_root().obj
    return settings


def emit(data: Any, as_json: bool, text: str | None = None) -> None:
    """Print a result as JSON or as the given text (JSON when no text is given)."""
    if as_json or text is None:
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        click.echo(text)


def main() -> None:
    cli(prog_name="emberlake")


if __name__ == "__main__":
    main()
