"""``emberlake queryd`` (serve SQL over HTTP) and ``emberlake query`` (ask the running daemon)."""

from __future__ import annotations

import sys

import click

from emberlake.settings import Settings, parse_pairs


def daemon_url(settings: Settings) -> str:
    """Where the local daemon listens, as a client reaches it."""
    host = settings.queryd.host
    if host in {"0.0.0.0", "::", ""}:
        host = "127.0.0.1"
    return f"http://{host}:{settings.queryd.port}"


def token_for(settings: Settings, tenant: str | None) -> str | None:
    """A configured bearer token of the tenant (or the default tenant), when auth is on."""
    wanted = tenant or settings.receiver.default_tenant
    for token, owner in parse_pairs(settings.receiver.tokens).items():
        if owner == wanted:
            return token
    return None


@click.command("queryd")
@click.pass_context
def queryd_command(ctx: click.Context) -> None:
    """Serve SQL over the lake on HTTP until Ctrl-C (SIGINT) or SIGTERM."""
    from emberlake.cli import settings_of
    from queryd.server import serve

    settings = settings_of(ctx)
    click.echo(f"queryd: serving {daemon_url(settings)}/v1/query", err=True)
    serve(settings)


@click.command("query")
@click.argument("sql")
@click.option(
    "--json", "as_json", is_flag=True, help="Print the JSON result (same as --format json)."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
)
@click.option("--tenant", default=None, help="Tenant to query as (default: the default tenant).")
@click.option("--token", default=None, help="Bearer token (default: the tenant's configured one).")
@click.option("--url", default=None, help="Query daemon URL (default: from settings).")
@click.option("--max-rows", type=int, default=None, help="Return at most this many rows.")
@click.pass_context
def query_command(
    ctx: click.Context,
    sql: str,
    as_json: bool,
    fmt: str,
    tenant: str | None,
    token: str | None,
    url: str | None,
    max_rows: int | None,
) -> None:
    """Run SQL (one SELECT; '-' reads it from stdin) against the running query daemon."""
    from emberlake.cli import emit, settings_of
    from queryd.client import QueryClient
    from queryd.render import text_table

    settings = settings_of(ctx)
    if sql == "-":
        sql = sys.stdin.read()
    client = QueryClient(
        url or daemon_url(settings),
        tenant=tenant,
        token=token or token_for(settings, tenant),
        timeout=settings.queryd.timeout_seconds + 30.0,
    )
    if as_json:
        fmt = "json"
    if fmt == "csv":
        body, _ = client.query_raw(sql, "text/csv")
        click.echo(body.decode(), nl=False)
        return
    result = client.query(sql, max_rows=max_rows)
    if fmt == "json":
        emit(result, True)
    else:
        emit(result, False, text_table(result))
