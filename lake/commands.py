"""``emberlake writer``: run the lake writer until SIGINT/SIGTERM.

Other lake subcommands (``compact``, ``tables``, ``partitioning``) live beside this one.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

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


# --- Compaction, layout and table listing: `emberlake compact`, `partitioning`, `tables` ---


def _table_refs(ctx: click.Context, tenant: str | None, table: str | None) -> list[tuple[str, str]]:
    from emberlake.errors import NotFound
    from lake.maintainer import list_tables

    catalog = _catalog(ctx)
    refs = [ref for ref in list_tables(catalog, tenant) if table is None or ref[1] == table]
    if not refs:
        where = f"tenant {tenant!r}" if tenant else "the lake"
        raise NotFound(f"no table {table or ''} in {where}".replace("  ", " "))
    return refs


def _catalog(ctx: click.Context) -> Any:
    from emberlake.cli import settings_of
    from lake.catalog import open_catalog

    # One catalog per command invocation (ctx.meta is shared by nested contexts).
    if "emberlake.catalog" not in ctx.meta:
        ctx.meta["emberlake.catalog"] = open_catalog(settings_of(ctx))
    return ctx.meta["emberlake.catalog"]


@click.command("compact")
@click.option("--tenant", default=None, help="Only this tenant's tables (default: all).")
@click.option("--table", "table_name", default=None, help="Only tables of this name (spans, ...).")
@click.option("--loop", is_flag=True, help="Run the lake maintainer periodically until stopped.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def compact_command(
    ctx: click.Context, tenant: str | None, table_name: str | None, loop: bool, as_json: bool
) -> None:
    """Rewrite small data files into target-sized ones (once, or with --loop periodically,
    together with layout adaptation, snapshot expiry and orphan file removal)."""
    from emberlake.cli import emit, settings_of
    from lake.compaction import CompactionOptions, compact_table
    from lake.maintainer import LakeMaintainer

    settings = settings_of(ctx)
    if loop:
        stop = threading.Event()

        def on_signal(signum: int, _frame: object) -> None:
            log.info("signal %d: stopping the lake maintainer", signum)
            stop.set()

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        LakeMaintainer(settings, _catalog(ctx)).run(stop)
        return
    options = CompactionOptions.from_settings(settings)
    results = []
    lines = []
    for namespace, name in _table_refs(ctx, tenant, table_name):
        result = compact_table(_catalog(ctx).load_table((namespace, name)), options)
        results.append(result.to_dict())
        lines.append(
            f"{result.table}: {result.files_before} files -> {result.files_after}"
            f" ({result.files_rewritten} rewritten into {result.files_written},"
            f" {result.commits} commits, {result.conflicts} conflicts, {result.seconds:.1f}s)"
        )
    emit(results, as_json, "\n".join(lines))


def _layout_text(table: Any) -> list[str]:
    from lake.layout import layout_of

    layout = layout_of(table)
    snapshot = table.current_snapshot()
    summary = snapshot.summary if snapshot is not None else None
    rows = summary["total-records"] if summary is not None else "0"
    files = summary["total-data-files"] if summary is not None else "0"
    return [
        f"{'.'.join(table.name())}: {rows} rows in {files} files",
        f"  partition by: {layout.describe_partition()} (spec {table.spec().spec_id},"
        f" {len(table.specs())} specs in history)",
        f"  sort by:      {layout.describe_sort()}",
    ]


def _change_text(entry: dict[str, Any]) -> str:
    evidence = ", ".join(f"{k}={v}" for k, v in (entry.get("evidence") or {}).items())
    when = f"{entry['at']} " if entry.get("at") else ""
    what = {"add": f"add {entry.get('after')}", "remove": f"remove {entry.get('before')}"}.get(
        str(entry.get("action")), f"{entry.get('before')} -> {entry.get('after')}"
    )
    return (
        f"  {when}{entry.get('kind')}: {what}\n    because {entry.get('reason')}\n    [{evidence}]"
    )


@click.group("partitioning")
def partitioning_command() -> None:
    """Show, propose and apply partition spec and sort order changes, and their log."""


def _partitioning_options(fn: Any) -> Any:
    fn = click.option("--json", "as_json", is_flag=True, help="Print JSON.")(fn)
    fn = click.option("--table", "table_name", default=None, help="spans, logs or metrics.")(fn)
    fn = click.option("--tenant", default=None, help="Tenant (default: the default tenant).")(fn)
    return click.pass_context(fn)


def _signal_tables(ctx: click.Context, tenant: str | None, table: str | None) -> list[Any]:
    from emberlake.cli import settings_of
    from lake.tables import SIGNAL_TABLES

    tenant = tenant or settings_of(ctx).receiver.default_tenant
    names = [table] if table else list(SIGNAL_TABLES)
    refs = [ref for ref in _table_refs(ctx, tenant, table) if ref[1] in names]
    return [(ns, _catalog(ctx).load_table((ns, name))) for ns, name in refs]


@partitioning_command.command("show")
@_partitioning_options
def partitioning_show(
    ctx: click.Context, tenant: str | None, table_name: str | None, as_json: bool
) -> None:
    """Current layout, statistics per partition, and the last layout changes."""
    from emberlake.cli import emit
    from lake.layout import collect_stats, layout_changes

    data, lines = [], []
    for _, table in _signal_tables(ctx, tenant, table_name):
        stats = collect_stats(table)
        changes = layout_changes(table)
        data.append(
            {
                "table": stats.table,
                "partition": stats.layout.describe_partition(),
                "sort": stats.layout.describe_sort(),
                "spec_id": stats.spec_id,
                "rows": stats.rows,
                "files": stats.files,
                "bytes": stats.bytes,
                "files_by_spec": dict(stats.files_by_spec),
                "distinct_services": stats.distinct_services,
                "partitions": [
                    {
                        "spec_id": p.spec_id,
                        "partition": p.key,
                        "rows": p.rows,
                        "files": p.files,
                        "bytes": p.bytes,
                    }
                    for p in stats.partitions
                ],
                "changes": changes,
            }
        )
        lines += _layout_text(table)
        lines.append(
            f"  {stats.bytes / 1e6:.1f} MB, {stats.distinct_services} services,"
            f" files per spec {dict(stats.files_by_spec)}"
        )
        for p in stats.partitions[-10:]:
            lines.append(f"    [{p.spec_id}] {p.key}: {p.rows} rows, {p.files} files, {p.bytes} B")
        lines.append(f"  layout changes: {len(changes)}")
        lines += [_change_text(c) for c in changes[-3:]]
    emit(data, as_json, "\n".join(lines))


@partitioning_command.command("propose")
@_partitioning_options
def partitioning_propose(
    ctx: click.Context, tenant: str | None, table_name: str | None, as_json: bool
) -> None:
    """What the layout policy would change, why, and on what evidence (changes nothing)."""
    from emberlake.cli import emit, settings_of
    from lake.layout import propose_layout

    data, lines = [], []
    for namespace, table in _signal_tables(ctx, tenant, table_name):
        proposal = propose_layout(settings_of(ctx), namespace, table)
        data.append(proposal.to_dict())
        lines.append(f"{proposal.table}: {proposal.current}")
        if proposal.empty:
            lines.append("  no change proposed")
        else:
            lines.append(f"  proposed: {proposal.target}")
            lines += [_change_text(c.to_dict()) for c in proposal.changes]
    emit(data, as_json, "\n".join(lines))


@partitioning_command.command("apply")
@_partitioning_options
def partitioning_apply(
    ctx: click.Context, tenant: str | None, table_name: str | None, as_json: bool
) -> None:
    """Apply the policy's proposal now: evolve spec and sort order, log the changes."""
    from emberlake.cli import emit, settings_of
    from lake.layout import apply_proposal, propose_layout

    data, lines = [], []
    for namespace, table in _signal_tables(ctx, tenant, table_name):
        proposal = propose_layout(settings_of(ctx), namespace, table)
        applied = apply_proposal(table, proposal, source="cli")
        data.append({"table": proposal.table, "applied": applied})
        lines.append(f"{proposal.table}: {len(applied)} change(s) applied")
        lines += [_change_text(entry) for entry in applied]
    emit(data, as_json, "\n".join(lines))


@partitioning_command.command("log")
@_partitioning_options
def partitioning_log(
    ctx: click.Context, tenant: str | None, table_name: str | None, as_json: bool
) -> None:
    """Every layout change of the tables, with its reason and evidence, oldest first."""
    from emberlake.cli import emit
    from lake.layout import layout_changes

    data, lines = [], []
    for _, table in _signal_tables(ctx, tenant, table_name):
        changes = layout_changes(table)
        data.append({"table": ".".join(table.name()), "changes": changes})
        lines.append(f"{'.'.join(table.name())}: {len(changes)} layout change(s)")
        lines += [_change_text(c) for c in changes]
    emit(data, as_json, "\n".join(lines))


@click.command("tables")
@click.option("--tenant", default=None, help="Only this tenant's tables (default: all).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def tables_command(ctx: click.Context, tenant: str | None, as_json: bool) -> None:
    """List the lake's tables with row and file counts, partition spec and sort order."""
    from emberlake.cli import emit
    from lake.layout import layout_of

    data: list[dict[str, Any]] = []
    lines: list[str] = []
    for namespace, name in _table_refs(ctx, tenant, None):
        table = _catalog(ctx).load_table((namespace, name))
        layout = layout_of(table)
        snapshot = table.current_snapshot()
        summary = snapshot.summary if snapshot is not None else None
        data.append(
            {
                "table": f"{namespace}.{name}",
                "rows": int(summary["total-records"] or 0) if summary else 0,
                "files": int(summary["total-data-files"] or 0) if summary else 0,
                "bytes": int(summary["total-files-size"] or 0) if summary else 0,
                "snapshots": len(table.metadata.snapshots),
                "partition": layout.describe_partition(),
                "sort": layout.describe_sort(),
            }
        )
    width = max((len(d["table"]) for d in data), default=5)
    lines.append(f"{'table':<{width}}  {'rows':>10}  {'files':>6}  partition / sort")
    for d in data:
        lines.append(
            f"{d['table']:<{width}}  {d['rows']:>10}  {d['files']:>6}  "
            f"{d['partition']} / {d['sort']}"
        )
    emit(data, as_json, "\n".join(lines))
