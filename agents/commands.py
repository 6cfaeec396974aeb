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
    if "end_time" in resource:  # a silence: what it mutes and when
        kinds = ",".join(resource.get("kinds") or []) or "all kinds"
        state = f"{resource.get('service')} ({kinds}) {resource.get('start_time')} .. "
        state += str(resource["end_time"])
        label = resource.get("reason") or ""
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
    page: dict[str, Any]
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


# ----------------------------------------------------------------------------------------------
# emberlake agents | sessions list|show|fork|ref | approve   (investigator agents)
# ----------------------------------------------------------------------------------------------


@click.command("agents")
@click.option("--once", is_flag=True, help="Do one pass (discover, advance sessions) and exit.")
@click.pass_context
def agents_command(ctx: click.Context, once: bool) -> None:
    """Run the investigator agents: work every open investigation in a durable session."""
    import signal
    import threading

    from agents.worker import build_worker

    settings = settings_of(ctx)
    worker = build_worker(settings)
    if once:
        try:
            done = worker.run_once()
        finally:
            worker.close()
        emit(
            {
                "started": done.started,
                "sessions": {k: v.status for k, v in done.outcomes.items()},
                "errors": done.errors,
            },
            True,
        )
        return
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    click.echo(
        f"agents: worker {worker.leases.holder if worker.leases else '?'} working open"
        f" investigations (model {worker.engine.model.name})",
        err=True,
    )
    try:
        worker.run_forever(stop)
    finally:
        worker.close()


def _sessions(ctx: click.Context) -> Any:
    from agents.sessions import SessionStore, store_for

    return SessionStore(store_for(settings_of(ctx)))


@click.group("sessions")
def sessions_command() -> None:
    """Agent sessions: list them, show a transcript, fork a branch, name a snapshot."""


@sessions_command.command("list")
@click.option("--tenant", default=None, help="Only this tenant's sessions.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def sessions_list(ctx: click.Context, tenant: str | None, as_json: bool) -> None:
    """Sessions with their status, steps and tokens, and each tenant's total."""
    from agents.budget import UsageLedger

    sessions = _sessions(ctx)
    ledger = UsageLedger(sessions)
    rows, tenants = [], set()
    for session_id in sessions.sessions(tenant):
        head = sessions.head(session_id)
        state = head.state
        tenants.add(state.tenant)
        rows.append(
            {
                "session": session_id,
                "status": state.status,
                "step": head.seq,
                "tokens": state.usage.total,
                "subject": state.subject,
                "reason": state.reason,
            }
        )
    totals = {t: ledger.tenant_usage(t).total.to_json() for t in sorted(tenants)}
    text = "\n".join(
        f"{r['session']:<48} {r['status']:<17} step {r['step']:<3} {r['tokens']:>8} tokens"
        f"  {r['reason']}"
        for r in rows
    )
    text += "".join(
        f"\ntenant {t}: {u['input_tokens']}+{u['output_tokens']} tokens" for t, u in totals.items()
    )
    emit({"sessions": rows, "tenant_usage": totals}, as_json, text or "no sessions")


@sessions_command.command("show")
@click.argument("spec")
@click.option("--json", "as_json", is_flag=True, help="Print the objects as JSON.")
@click.pass_context
def sessions_show(ctx: click.Context, spec: str, as_json: bool) -> None:
    """Show a transcript: SPEC is tenant/name, tenant/name@STEP, a reference or an address.

    For a session (tenant/name, tenant/name@STEP) it also shows the session's lease: which
    worker holds it and until when, or who released it.
    """
    import time

    from agents.sessions import SessionLeases, render

    sessions = _sessions(ctx)
    address = sessions.resolve(spec)
    snapshot = sessions.get_snapshot(address)
    objects = sessions.replay(address)
    state = snapshot.state
    session_id = sessions.session_of(spec)
    lease = None
    if session_id is not None:
        # Read only: the holder name of this reader never goes into a lease.
        lease = SessionLeases(sessions.store, holder="").current(session_id)
    now = time.time()
    data = {
        "snapshot": address,
        "session": session_id,
        "lease": lease.to_json(now) if lease is not None else None,
        "state": state.to_json(),
        "objects": [{"address": o.address, "kind": o.kind, "body": o.body} for o in objects],
    }
    header = (
        f"snapshot {address}\nstatus {state.status}, {state.steps} steps,"
        f" {state.usage.input_tokens}+{state.usage.output_tokens} tokens"
        + (f"\n{state.reason}" if state.reason else "")
    )
    if session_id is not None:
        header += f"\nlease {lease.describe(now) if lease is not None else 'never taken'}"
    emit(data, as_json, header + "\n\n" + render(objects))


@sessions_command.command("fork")
@click.argument("source")
@click.argument("new_session")
@click.pass_context
def sessions_fork(ctx: click.Context, source: str, new_session: str) -> None:
    """Start NEW_SESSION (tenant/name) from the snapshot SOURCE names; the source is unchanged.

    The worker advances the fork like any other unfinished session.
    """
    head = _sessions(ctx).fork(source, new_session)
    click.echo(f"forked {source} into {new_session} at snapshot {head.address}")


@sessions_command.command("ref")
@click.argument("name")
@click.argument("spec", required=False)
@click.pass_context
def sessions_ref(ctx: click.Context, name: str, spec: str | None) -> None:
    """Name a snapshot (NAME SPEC), or print what NAME names (NAME alone)."""
    sessions = _sessions(ctx)
    if spec is None:
        address = sessions.get_ref(name)
        if address is None:
            raise InvalidArgument(f"no reference named {name!r}")
        click.echo(address)
        return
    address = sessions.resolve(spec)
    sessions.set_ref(name, address)
    click.echo(f"{name} -> {address}")


@click.command("approve")
@click.argument("approval")
@click.option("--reject", is_flag=True, help="Refuse instead of approving.")
@click.option("--note", default="", help="Why; the agent reads it.")
@click.option("--by", "decided_by", default=None, help="Who decides (default: this OS user).")
@click.option("--url", default=None, help="Query daemon URL (default: from the queryd settings).")
@click.option("--tenant", default=None, help="Tenant, when APPROVAL is a bare id.")
@click.option("--token", default=None, help="Bearer token (when auth is on).")
@click.pass_context
def approve_command(
    ctx: click.Context,
    approval: str,
    reject: bool,
    note: str,
    decided_by: str | None,
    url: str | None,
    tenant: str | None,
    token: str | None,
) -> None:
    """Approve (or --reject) an action an agent waits for: tenants/T/approvals/ID or ID."""
    import datetime as dt
    import os
    import pwd

    settings = settings_of(ctx)
    if not approval.startswith("tenants/"):
        approval = f"tenants/{tenant or settings.receiver.default_tenant}/approvals/{approval}"
    client = _client(ctx, url, approval.split("/")[1], token)
    current = client.get(approval)
    if current.get("state") != "PENDING":
        raise InvalidArgument(f"{approval} was already decided: {current.get('state')}")
    body = {
        "state": "REJECTED" if reject else "APPROVED",
        "decided_by": decided_by or pwd.getpwuid(os.getuid()).pw_name,
        "decision_time": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
        "note": note,
        "etag": current["etag"],
    }
    done = client.update(approval, body, ["state", "decided_by", "decision_time", "note"])
    click.echo(f"{done['name']}: {done['state']} ({done.get('action', '')})")
