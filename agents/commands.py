"""``emberlake`` subcommands of the agents package.

Each command lives in its own block below: the detectors' worker, then the resource commands
(get, list, create, update, delete) that talk to the resource API of the query daemon.
"""

from __future__ import annotations

import json
from typing import Any

import click

from emberlake.cli import emit, settings_of
from emberlake.errors import InvalidArgument

# ----------------------------------------------------------------------------------------------
# emberlake detectors
# ----------------------------------------------------------------------------------------------


@click.command("detectors")
@click.option(
    "--intake/--no-intake",
    default=True,
    help="Also consume the anomaly topic and open investigations (default: on).",
)
@click.pass_context
def detectors_command(ctx: click.Context, intake: bool) -> None:
    """Run the streaming anomaly detectors (faust-streaming worker) until stopped."""
    from agents.faust_app import run_detectors

    run_detectors(settings_of(ctx), intake=intake)


# ----------------------------------------------------------------------------------------------
# emberlake get | list | create | update | delete   (the resource API)
# ----------------------------------------------------------------------------------------------


def _api_options(fn: Any) -> Any:
    fn = click.option("--json", "as_json", is_flag=True, help="Print JSON.")(fn)
    fn = click.option("--token", default=None, help="Bearer token (when auth is on).")(fn)
    fn = click.option("--tenant", default=None, help="Act for this tenant (when auth is off).")(fn)
    fn = click.option(
        "--url", default=None, help="Query daemon URL (default: from the queryd settings)."
    )(fn)
    return fn


def _client(ctx: click.Context, url: str | None, tenant: str | None, token: str | None) -> Any:
    from agents.resources.client import ResourceClient

    settings = settings_of(ctx)
    base = url or f"http://{settings.queryd.host}:{settings.queryd.port}"
    return ResourceClient(base, tenant=tenant, token=token)


def _body(text: str) -> dict[str, Any]:
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"--json is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidArgument("--json must be a JSON object")
    return body


def _line(resource: dict[str, Any]) -> str:
    label = resource.get("title") or resource.get("summary") or resource.get("action") or ""
    state = resource.get("state") or resource.get("severity") or ""
    return "  ".join(str(p) for p in (resource.get("name"), state, label) if p)


@click.command("get")
@click.argument("name")
@_api_options
@click.pass_context
def get_command(
    ctx: click.Context,
    name: str,
    url: str | None,
    tenant: str | None,
    token: str | None,
    as_json: bool,
) -> None:
    """Show one resource, e.g. tenants/default/investigations/abc123."""
    emit(_client(ctx, url, tenant, token).get(name), True)


@click.command("list")
@click.argument("collection")
@click.option("--filter", "filter_", default="", help='AIP-160 filter, e.g. state = "OPEN".')
@click.option("--order-by", default="", help='e.g. "create_time desc, title".')
@click.option("--page-size", type=int, default=None, help="At most this many (max 1000).")
@click.option("--page-token", default="", help="Continue a previous listing.")
@click.option("--all", "all_pages", is_flag=True, help="Follow page tokens to the end.")
@_api_options
@click.pass_context
def list_command(
    ctx: click.Context,
    collection: str,
    filter_: str,
    order_by: str,
    page_size: int | None,
    page_token: str,
    all_pages: bool,
    url: str | None,
    tenant: str | None,
    token: str | None,
    as_json: bool,
) -> None:
    """List a collection, e.g. tenants/default/investigations."""
    from agents.resources.names import parse

    client = _client(ctx, url, tenant, token)
    plural = parse(collection).collection.plural
    if all_pages:
        items = list(client.list_all(collection, filter_, order_by))
        page = {plural: items, "next_page_token": "", "total_size": len(items)}
    else:
        page = client.list(collection, filter_, order_by, page_size, page_token)
    lines = [_line(r) for r in page.get(plural, [])]
    if page.get("next_page_token"):
        lines.append(f"(more: --page-token {page['next_page_token']})")
    emit(page, as_json, "\n".join(lines) or f"no {plural}")


@click.command("create")
@click.argument("collection")
@click.option("--json", "body", required=True, help="The resource as a JSON object.")
@click.option("--id", "resource_id", default=None, help="Choose the id (default: assigned).")
@click.option("--url", default=None, help="Query daemon URL (default: from the queryd settings).")
@click.option("--tenant", default=None, help="Act for this tenant (when auth is off).")
@click.option("--token", default=None, help="Bearer token (when auth is on).")
@click.pass_context
def create_command(
    ctx: click.Context,
    collection: str,
    body: str,
    resource_id: str | None,
    url: str | None,
    tenant: str | None,
    token: str | None,
) -> None:
    """Create a resource in a collection, e.g. tenants/default/known_issues."""
    emit(_client(ctx, url, tenant, token).create(collection, _body(body), resource_id), True)


@click.command("update")
@click.argument("name")
@click.option("--json", "body", required=True, help="Fields to change, as a JSON object.")
@click.option("--update-mask", default=None, help="Comma-separated fields (default: all given).")
@click.option("--etag", default=None, help="Only if the resource still has this etag.")
@click.option("--url", default=None, help="Query daemon URL (default: from the queryd settings).")
@click.option("--tenant", default=None, help="Act for this tenant (when auth is off).")
@click.option("--token", default=None, help="Bearer token (when auth is on).")
@click.pass_context
def update_command(
    ctx: click.Context,
    name: str,
    body: str,
    update_mask: str | None,
    etag: str | None,
    url: str | None,
    tenant: str | None,
    token: str | None,
) -> None:
    """Update fields of a resource (PATCH with a field mask)."""
    fields = _body(body)
    if etag:
        fields["etag"] = etag
    mask = None if update_mask is None else [p for p in update_mask.split(",") if p.strip()]
    emit(_client(ctx, url, tenant, token).update(name, fields, mask), True)


@click.command("delete")
@click.argument("name")
@click.option("--etag", default=None, help="Only if the resource still has this etag.")
@click.option("--force", is_flag=True, help="Also delete its child resources.")
@click.option("--url", default=None, help="Query daemon URL (default: from the queryd settings).")
@click.option("--tenant", default=None, help="Act for this tenant (when auth is off).")
@click.option("--token", default=None, help="Bearer token (when auth is on).")
@click.pass_context
def delete_command(
    ctx: click.Context,
    name: str,
    etag: str | None,
    force: bool,
    url: str | None,
    tenant: str | None,
    token: str | None,
) -> None:
    """Delete a resource."""
    _client(ctx, url, tenant, token).delete(name, etag=etag, force=force)
    click.echo(f"deleted {name}")
