"""Helpers for fault, scale-out and hostile-input tests: emberlake components as real processes,
and counting records in the lake.

Records carry a unique ``test.uid`` attribute. The sender (``emberlake.loadgen.AckedSpanSender``)
remembers, per export request, whether the receiver acknowledged it and when the request was in
flight, so a test can demand that every acknowledged record is in the lake exactly once and tell
which unacknowledged ones may be lost.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from emberlake.broker import wait_for_port
from emberlake.loadgen import UID_ATTRIBUTE
from emberlake.settings import Settings, to_env

UID = UID_ATTRIBUTE


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MiB (0 once it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def wait_until(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll ``check`` until it returns something truthy; return it, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


class Component:
    """``python -m emberlake.cli <args>`` with the given settings in its environment."""

    def __init__(
        self,
        settings: Settings,
        args: Iterable[str],
        log_path: Path,
        env: dict[str, str] | None = None,
    ):
        self.settings = settings
        self.args = list(args)
        self.log_path = log_path
        self.extra_env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Component:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("EMBERLAKE_", "OTEL_"))}
        env.update(to_env(self.settings))
        env.update(self.extra_env)
        env["PYTHONUNBUFFERED"] = "1"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "emberlake.cli", *self.args],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def wait_port(self, port: int, timeout: float = 30.0) -> Component:
        try:
            wait_for_port("127.0.0.1", port, timeout)
        except Exception:
            raise AssertionError(
                f"{self.args[0]} did not listen on {port}:\n{self.log()}"
            ) from None
        return self

    def kill(self) -> None:
        """SIGKILL: no flush, no goodbye."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM and wait for a graceful exit; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(
                f"{self.args[0]} did not stop in {timeout}s:\n{self.log()}"
            ) from None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self, tail: int = 4000) -> str:
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-tail:]


# -- the lake, read back -------------------------------------------------------------------


def lake_uid_counts(settings: Settings, tables: Iterable[str]) -> Counter[str]:
    """How often each ``test.uid`` occurs in the given tables (``tenant.signal``)."""
    from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

    from lake.catalog import open_catalog

    catalog = open_catalog(settings)
    counts: Counter[str] = Counter()
    for name in tables:
        try:
            rows = catalog.load_table(name).scan(selected_fields=("attributes",)).to_arrow()
        except (NoSuchTableError, NoSuchNamespaceError):
            continue
        for attributes in rows.column("attributes").to_pylist():
            uid = dict(attributes or ()).get(UID)
            if uid is not None:
                counts[uid] += 1
    return counts


def assert_exactly_once(
    counts: Counter[str],
    must: set[str],
    allowed_duplicates: set[str] = frozenset(),  # type: ignore[assignment]
) -> None:
    """Every uid in ``must`` is present; none is present twice except ``allowed_duplicates``."""
    missing = must - set(counts)
    assert not missing, f"{len(missing)} acknowledged records lost, e.g. {sorted(missing)[:5]}"
    duplicated = {u: n for u, n in counts.items() if n > 1 and u not in allowed_duplicates}
    assert not duplicated, (
        f"{len(duplicated)} records duplicated, e.g. {list(duplicated.items())[:5]}"
    )


def uid_counts_sql(run: str) -> str:
    """SQL counting each uid of a run in ``spans`` (through the query daemon)."""
    return (
        f"SELECT attributes['{UID}'] AS uid, count(*) AS n FROM spans "
        f"WHERE resource_attributes['test.run'] = '{run}' GROUP BY 1"
    )


def supervised_pid(up_log: Path, name: str) -> int | None:
    """The pid the supervisor of ``emberlake up`` last started component ``name`` with."""
    if not up_log.exists():
        return None
    found = re.findall(
        rf"started {re.escape(name)} \(pid (\d+)", up_log.read_text(errors="replace")
    )
    return int(found[-1]) if found else None


def process_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie awaiting its parent counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"
