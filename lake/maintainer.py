"""LakeMaintainer: keep every table fast to query, in one periodic loop.

Each cycle visits every table of every namespace and, per table:

1. **adapts the layout** (signal tables, every ``layout_interval_seconds``): collects statistics,
   reads the tenant's query log, asks the policy for a proposal and, with ``layout_auto_apply``,
   applies it (every change logged with its reason in the table's change log);
2. **compacts** small files, which also moves small files of older specs into the current one, so
   a layout change reaches recent data on the next cycle;
3. **expires snapshots** (:mod:`lake.maintenance`);
4. **removes orphan files** (every ``orphan_interval_seconds``), older than the safety age.

A failure on one table is logged and reported, never stops the loop. ``emberlake compact
--loop`` runs it as a process (the supervisor of ``emberlake up`` does), ``emberlake compact``
runs one cycle of compaction.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchNamespaceError
from pyiceberg.table import Table

from emberlake.errors import EmberlakeError
from emberlake.settings import Settings
from lake.catalog import open_catalog
from lake.compaction import CompactionOptions, CompactionResult, compact_table
from lake.layout import apply_proposal, propose_layout
from lake.maintenance import expire_snapshots
from lake.orphans import OrphanReport, remove_orphan_files
from lake.tables import SIGNAL_TABLES, SYSTEM_NAMESPACE

log = logging.getLogger(__name__)


@dataclass
class TableMaintenance:
    """What one maintenance cycle did to one table."""

    table: str
    compaction: CompactionResult | None = None
    proposed: list[dict[str, Any]] = field(default_factory=list)
    applied: list[dict[str, Any]] = field(default_factory=list)
    expired_snapshots: int = 0
    orphans: OrphanReport | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "compaction": self.compaction.to_dict() if self.compaction else None,
            "proposed": self.proposed,
            "applied": self.applied,
            "expired_snapshots": self.expired_snapshots,
            "orphans": self.orphans.to_dict() if self.orphans else None,
            "error": self.error,
        }


def list_tables(catalog: Catalog, tenant: str | None = None) -> list[tuple[str, str]]:
    """(namespace, table) pairs of the lake, or of one tenant's namespace, sorted."""
    namespaces = [tenant] if tenant else [ns[0] for ns in catalog.list_namespaces()]
    out: list[tuple[str, str]] = []
    for namespace in namespaces:
        try:
            out.extend((namespace, ident[-1]) for ident in catalog.list_tables(namespace))
        except NoSuchNamespaceError:
            continue
    return sorted(out)


class LakeMaintainer:
    """Compacts, adapts, expires and cleans every table of the lake, periodically."""

    def __init__(self, settings: Settings, catalog: Catalog | None = None) -> None:
        self.settings = settings
        self.catalog = catalog or open_catalog(settings)
        self.options = CompactionOptions.from_settings(settings)
        self._layout_due: dict[str, float] = {}
        self._orphans_due: dict[str, float] = {}
        self.cycles = 0

    def _due(self, schedule: dict[str, float], name: str, interval: float, now: float) -> bool:
        if interval <= 0:
            return False
        if now < schedule.get(name, 0.0):
            return False
        schedule[name] = now + interval
        return True

    def adapt(self, namespace: str, table: Table, report: TableMaintenance) -> None:
        """Propose a layout for the table and apply it when auto-apply is on."""
        proposal = propose_layout(self.settings, namespace, table)
        report.proposed = [c.to_dict() for c in proposal.changes]
        if proposal.empty or not self.settings.lake.layout_auto_apply:
            return
        report.applied = apply_proposal(table, proposal, source="maintainer")

    def maintain(
        self,
        namespace: str,
        name: str,
        *,
        adapt: bool | None = None,
        orphans: bool | None = None,
        stop: threading.Event | None = None,
    ) -> TableMaintenance:
        """One maintenance pass over one table; ``adapt``/``orphans`` force or skip those steps
        (None: when due by their intervals)."""
        lake = self.settings.lake
        ident = f"{namespace}.{name}"
        report = TableMaintenance(ident)
        now = time.monotonic()
        try:
            table = self.catalog.load_table((namespace, name))
            adaptable = namespace != SYSTEM_NAMESPACE and name in SIGNAL_TABLES
            if adapt is None:
                adapt = adaptable and self._due(
                    self._layout_due, ident, lake.layout_interval_seconds, now
                )
            if adapt and adaptable:
                self.adapt(namespace, table, report)
            report.compaction = compact_table(table, self.options, stop=stop)
            report.expired_snapshots = expire_snapshots(
                table, lake.snapshot_retain_seconds, lake.snapshots_keep_min
            )
            if orphans is None:
                orphans = self._due(self._orphans_due, ident, lake.orphan_interval_seconds, now)
            if orphans:
                report.orphans = remove_orphan_files(table, lake.orphan_min_age_seconds)
        except (EmberlakeError, OSError, ValueError) as exc:
            report.error = f"{type(exc).__name__}: {exc}"
            log.warning("maintenance of %s failed: %s", ident, report.error)
        except Exception as exc:  # a pyiceberg or catalog failure must not stop the loop
            report.error = f"{type(exc).__name__}: {exc}"
            log.exception("maintenance of %s failed", ident)
        return report

    def run_once(
        self, tenant: str | None = None, stop: threading.Event | None = None, **forced: bool | None
    ) -> list[TableMaintenance]:
        """One cycle over every table (or one tenant's tables)."""
        reports = []
        for namespace, name in list_tables(self.catalog, tenant):
            if stop is not None and stop.is_set():
                break
            report = self.maintain(namespace, name, stop=stop, **forced)
            if report.applied:
                for change in report.applied:
                    log.info(
                        "%s: %s -> %s: %s",
                        report.table,
                        change["before"],
                        change["after"],
                        change["reason"],
                    )
            compaction = report.compaction
            if compaction and compaction.commits:
                log.info(
                    "%s: compacted %d files into %d (%d files now)",
                    report.table,
                    compaction.files_rewritten,
                    compaction.files_written,
                    compaction.files_after,
                )
            reports.append(report)
        self.cycles += 1
        return reports

    def run(self, stop: threading.Event) -> None:
        """Run cycles every ``compact_interval_seconds`` until ``stop`` is set."""
        interval = max(1.0, self.settings.lake.compact_interval_seconds)
        log.info("lake maintainer: a cycle every %.0fs", interval)
        while not stop.is_set():
            started = time.monotonic()
            self.run_once(stop=stop)
            stop.wait(max(0.0, interval - (time.monotonic() - started)))

    def start(self) -> tuple[threading.Thread, threading.Event]:
        """Run :meth:`run` in a daemon thread; set the returned event to stop it."""
        stop = threading.Event()
        thread = threading.Thread(
            target=self.run, args=(stop,), name="lake-maintainer", daemon=True
        )
        thread.start()
        return thread, stop
