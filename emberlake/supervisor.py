"""``emberlake up``: the whole system on one machine, supervised.

It starts the broker (embedded unless bootstrap servers are set), creates the topics, produces
into it what the receiver's ack journal holds and the lake lacks (see :mod:`ingest.journal`),
then runs every component as its own process — the same ``emberlake <component>`` commands that
run alone when scaling out — restarts any that dies, and on Ctrl-C stops them in an order that
loses nothing: intake first, then the lake writer once it has drained what the broker holds,
then the rest, then the broker.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO

import click

from emberlake.broker import EmbeddedBroker, broker_for
from emberlake.process import child_setup
from emberlake.settings import Settings, to_env

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Component:
    """One supervised process: a name and the ``emberlake`` subcommand that runs it."""

    name: str
    args: tuple[str, ...]
    #: Seconds to wait after SIGTERM before SIGKILL.
    stop_timeout: float = 15.0


#: Start order; stop order is the reverse, except that intake always stops first.
COMPONENTS: tuple[Component, ...] = (
    Component("writer", ("writer",), stop_timeout=60.0),
    Component("queryd", ("queryd",)),
    Component("detectors", ("detectors",)),
    Component("agents", ("agents",)),
    Component("maintainer", ("compact", "--loop")),
    Component("receiver", ("receiver",)),
)


@dataclass
class Running:
    component: Component
    proc: subprocess.Popen[bytes]
    log_file: IO[bytes]
    started: float = field(default_factory=time.monotonic)
    restarts: int = 0


def available(component: Component) -> bool:
    """Whether this installation has the component's subcommand (optional parts may be absent)."""
    from emberlake.cli import cli

    ctx = click.Context(cli)
    return cli.get_command(ctx, component.args[0]) is not None


class Supervisor:
    """Starts, watches and stops the components of one emberlake system."""

    def __init__(self, settings: Settings, only: tuple[str, ...] = ()):
        self.settings = settings
        self.only = only
        self.broker = broker_for(settings)
        self.running: dict[str, Running] = {}
        self._stopping = threading.Event()
        self.logs = settings.data_path / "logs"

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(to_env(self._live_settings()))
        env["EMBERLAKE_DATA_DIR"] = str(self.settings.data_path)
        return env

    def _spawn(self, component: Component) -> Running:
        self.logs.mkdir(parents=True, exist_ok=True)
        log_file = (self.logs / f"{component.name}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "emberlake.cli", *component.args],
            env=self._env(),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=child_setup,
        )
        log.info("started %s (pid %d, log %s)", component.name, proc.pid, log_file.name)
        return Running(component, proc, log_file)

    def components(self) -> list[Component]:
        chosen = [c for c in COMPONENTS if not self.only or c.name in self.only]
        return [c for c in chosen if available(c)]

    def start(self) -> None:
        self.settings.data_path.mkdir(parents=True, exist_ok=True)
        self._start_broker()
        for component in self.components():
            self.running[component.name] = self._spawn(component)

    def _start_broker(self, attempts: int = 3) -> None:
        """Start the broker, create the topics, and replay the receiver's ack journal into it.

        The replay comes before any component starts: the lake writer, once started, forgets
        the checkpoints of earlier clusters, which the replay reads to skip what the lake holds.
        A replay that failed half-way may have left some entries in the broker, so the next
        attempt starts a fresh one.
        """
        from emberlake.errors import JournalError
        from ingest.journal import journal_enabled
        from ingest.kafka import ensure_emberlake_topics

        for attempt in range(1, attempts + 1):
            self.broker.start()
            if isinstance(self.broker, EmbeddedBroker):
                log.info(
                    "started broker (pid %s, cluster %s)", self.broker.pid, self.broker.cluster_id
                )
            ensure_emberlake_topics(self._live_settings())
            if not journal_enabled(self.settings):
                return
            try:
                self._replay_journal()
                return
            except JournalError as exc:
                if attempt == attempts or not isinstance(self.broker, EmbeddedBroker):
                    raise
                log.error("%s; starting a fresh broker to replay into", exc)
                self.broker.stop()
                self.broker = broker_for(self.settings)

    def _replay_journal(self) -> None:
        from ingest.journal import journal_dir, replay_journal
        from ingest.kafka import cluster_id

        live = self._live_settings()
        replay_journal(live, journal_dir(self.settings), cluster_id(live))

    def _live_settings(self) -> Settings:
        """The settings, pointed at the broker actually running (embedded ones get a port), with
        the receiver's journal decided here: children see bootstrap servers either way."""
        from ingest.journal import journal_enabled

        kafka = replace(self.settings.kafka, bootstrap_servers=self.broker.bootstrap_servers)
        receiver = replace(
            self.settings.receiver, journal="on" if journal_enabled(self.settings) else "off"
        )
        return self.settings.replace(kafka=kafka, receiver=receiver)

    def watch(self) -> None:
        """Restart components that die, with backoff, until asked to stop."""
        while not self._stopping.wait(1.0):
            if isinstance(self.broker, EmbeddedBroker):
                if not self.broker.alive():
                    log.error("the embedded broker died; restarting it and every component")
                    self._restart_all()
                    continue
                rss = self.broker.memory_mb()
                if rss > self.settings.kafka.embedded_max_memory_mb:
                    log.warning(
                        "embedded broker holds %d MB (limit %d): draining it into the lake and "
                        "starting it afresh",
                        rss,
                        self.settings.kafka.embedded_max_memory_mb,
                    )
                    self._restart_all()
                    continue
            for name, run in list(self.running.items()):
                code = run.proc.poll()
                if code is None:
                    continue
                run.log_file.close()
                backoff = min(30.0, 2.0 ** min(run.restarts, 5))
                if time.monotonic() - run.started > 60:
                    backoff = 1.0
                log.warning("%s exited with %s; restarting in %.0fs", name, code, backoff)
                if self._stopping.wait(backoff):
                    return
                new = self._spawn(run.component)
                new.restarts = run.restarts + 1
                self.running[name] = new

    def _restart_all(self) -> None:
        """Stop every component, then the broker; start a fresh broker (replaying the receiver's
        journal into it, see :meth:`_start_broker`) and every component again."""
        self._stop_components()
        self.broker.stop()
        self.broker = broker_for(self.settings)
        self.start()

    def _stop_one(self, run: Running) -> None:
        if run.proc.poll() is None:
            run.proc.send_signal(signal.SIGTERM)
            try:
                run.proc.wait(timeout=run.component.stop_timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in time; killing it", run.component.name)
                run.proc.kill()
                run.proc.wait()
        run.log_file.close()
        log.info("stopped %s", run.component.name)

    def _stop_components(self) -> None:
        """Stop intake, then the writer (which drains what the broker holds into the lake before
        it exits), then the rest."""
        order = ["receiver", "writer"] + [
            c.name for c in reversed(COMPONENTS) if c.name not in {"receiver", "writer"}
        ]
        for name in order:
            run = self.running.pop(name, None)
            if run is None:
                continue
            self._stop_one(run)

    def stop(self) -> None:
        self._stopping.set()
        self._stop_components()
        self.broker.stop()


def _print_banner(settings: Settings, sup: Supervisor) -> None:
    from ingest.journal import journal_enabled

    r, q = settings.receiver, settings.queryd
    click.echo(
        "\n".join(
            [
                f"emberlake is up (data in {settings.data_path})",
                f"  broker     {sup.broker.bootstrap_servers}"
                + (" (embedded, memory-backed)" if settings.embedded_broker else "")
                + (" + receiver ack journal" if journal_enabled(settings) else ""),
                f"  OTLP/gRPC  {r.host}:{r.grpc_port}",
                f"  OTLP/HTTP  http://{r.host}:{r.http_port}",
                f'  SQL        http://{q.host}:{q.port}/v1/query   (emberlake query "SELECT 1")',
                f"  components {', '.join(sup.running)}  (logs in {sup.logs})",
                "Send data with `emberlake demo`; Ctrl-C stops everything.",
            ]
        )
    )


@click.command("up")
@click.option("--only", multiple=True, help="Run only these components (repeatable).")
@click.pass_context
def up_command(ctx: click.Context, only: tuple[str, ...]) -> None:
    """Start the broker and every component, supervised; Ctrl-C stops them cleanly."""
    from emberlake.cli import settings_of

    settings = settings_of(ctx)
    sup = Supervisor(settings, only)

    def on_signal(signum: int, _frame: object) -> None:
        sup._stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        sup.start()
        _print_banner(settings, sup)
        sup.watch()
    finally:
        click.echo("stopping emberlake ...")
        sup.stop()
        click.echo("stopped.")


@click.command("broker")
@click.pass_context
def broker_command(ctx: click.Context) -> None:
    """Run only the embedded broker (memory-backed) until Ctrl-C."""
    from emberlake.cli import settings_of

    settings = settings_of(ctx)
    broker = EmbeddedBroker(
        settings.kafka.embedded_port, Path(settings.data_path) / "logs" / "broker.log"
    )
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    broker.start()
    click.echo(f"embedded broker on {broker.bootstrap_servers} (cluster {broker.cluster_id})")
    try:
        while not stop.wait(1.0):
            if not broker.alive():
                raise SystemExit("the embedded broker exited")
    finally:
        broker.stop()
