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
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING

import click

from emberlake.broker import Broker, EmbeddedBroker, broker_for, embedded_broker
from emberlake.errors import ConfigError
from emberlake.process import child_setup
from emberlake.settings import Settings, to_env

if TYPE_CHECKING:
    from ingest.journal import ReplayReport

log = logging.getLogger(__name__)


def live_settings(settings: Settings, broker: Broker) -> Settings:
    """The settings, pointed at the broker actually running (embedded ones get a port), with
    the receiver's journal decided here: children see bootstrap servers either way."""
    from ingest.journal import journal_enabled

    kafka = replace(settings.kafka, bootstrap_servers=broker.bootstrap_servers)
    receiver = replace(settings.receiver, journal="on" if journal_enabled(settings) else "off")
    return settings.replace(kafka=kafka, receiver=receiver)


def start_broker(
    settings: Settings,
    broker: Broker,
    fresh: Callable[[], Broker],
    attempts: int = 3,
    settle: Callable[[Broker], bool] | None = None,
) -> tuple[Broker, ReplayReport | None]:
    """Start ``broker``, create the topics, and, when the receiver journals with these
    settings, produce into it what the journal holds and the lake lacks; returns the broker
    running and the replay's report (None when there was none).

    ``settle`` is called with the running broker before the replay and may wait; the replay
    is skipped when it returns False. A replay that failed half-way may have left some entries
    in the broker, so the next attempt replays into a fresh one (``fresh()``); an external
    broker is not retried.
    """
    from emberlake.errors import JournalError
    from ingest.journal import journal_dir, journal_enabled, replay_journal
    from ingest.kafka import cluster_id, ensure_emberlake_topics

    attempt = 1
    while True:
        broker.start()
        if isinstance(broker, EmbeddedBroker):
            log.info("started broker (pid %s, cluster %s)", broker.pid, broker.cluster_id)
        try:
            live = live_settings(settings, broker)
            ensure_emberlake_topics(live)
            if not journal_enabled(settings) or (settle is not None and not settle(broker)):
                return broker, None
            return broker, replay_journal(live, journal_dir(settings), cluster_id(live))
        except JournalError as exc:
            if attempt == attempts or not isinstance(broker, EmbeddedBroker):
                broker.stop()
                raise
            log.error("%s; starting a fresh broker to replay into", exc)
        except BaseException:
            broker.stop()
            raise
        broker.stop()
        broker = fresh()
        attempt += 1


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


def last_log_line(path: Path, tail_bytes: int = 4096) -> str:
    """The last non-empty line of a component's log (its error, when it died of one)."""
    try:
        with path.open("rb") as f:
            f.seek(max(0, path.stat().st_size - tail_bytes))
            tail = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


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

    def check_ports(self) -> None:
        """Refuse to start when a port the system listens on is held by something else."""
        from emberlake.ports import in_use, listeners, taken_message

        names = [c.name for c in self.components()]
        taken = [p for p in listeners(self.settings, names) if in_use(p)]
        if taken:
            raise ConfigError(taken_message(taken))

    def start(self) -> None:
        self.settings.data_path.mkdir(parents=True, exist_ok=True)
        self._start_broker()
        for component in self.components():
            self.running[component.name] = self._spawn(component)

    def _start_broker(self, attempts: int = 3) -> None:
        """Start the broker, create the topics, and replay the receiver's ack journal into it
        (see :func:`start_broker`), before any component starts: the lake writer, once
        started, forgets the checkpoints of earlier clusters, which the replay reads to skip
        what the lake holds."""
        self.broker, _ = start_broker(
            self.settings, self.broker, lambda: broker_for(self.settings), attempts
        )

    def _live_settings(self) -> Settings:
        return live_settings(self.settings, self.broker)

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
                log.warning(
                    "%s exited with %s; restarting in %.0fs (last log line: %s)",
                    name,
                    code,
                    backoff,
                    last_log_line(Path(run.log_file.name)) or "none",
                )
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

    sup.check_ports()
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


#: Seconds ``emberlake broker`` waits, beyond the lake's batch time, before it replays the
#: journal: a lake writer still running on the old broker commits what it had read by then.
REPLAY_SETTLE_SECONDS = 3.0


@click.command("broker")
@click.option(
    "--replay-after",
    type=float,
    default=None,
    help="Seconds to wait before replaying the receiver's journal into the new broker "
    f"(default: lake.batch_max_seconds + {REPLAY_SETTLE_SECONDS:.0f}).",
)
@click.pass_context
def broker_command(ctx: click.Context, replay_after: float | None) -> None:
    """Run only the embedded broker (memory-backed) until Ctrl-C.

    When the receiver journals into this data folder, what the journal holds of earlier
    brokers and the lake lacks is produced into it once it runs, as `emberlake up` does (see
    `emberlake journal`). It waits a little first: a lake writer still running on the old
    broker commits what it had read (and then exits, to be restarted on the new one).
    """
    from emberlake.cli import settings_of
    from ingest.journal import journal_enabled

    settings = settings_of(ctx)
    delay = settings.lake.batch_max_seconds + REPLAY_SETTLE_SECONDS
    if replay_after is not None:
        delay = replay_after

    def announce(broker: Broker) -> None:
        assert isinstance(broker, EmbeddedBroker)
        click.echo(f"embedded broker on {broker.bootstrap_servers} (cluster {broker.cluster_id})")

    def settle(broker: Broker) -> bool:
        announce(broker)
        click.echo(f"replaying the receiver's journal in {delay:.1f}s")
        return not stop.wait(delay)

    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    broker, report = start_broker(
        settings, embedded_broker(settings), lambda: embedded_broker(settings), settle=settle
    )
    assert isinstance(broker, EmbeddedBroker)
    try:
        if report is not None:
            click.echo(str(report))
        if not journal_enabled(settings):
            announce(broker)
        while not stop.wait(1.0):
            if not broker.alive():
                raise SystemExit("the embedded broker exited")
    finally:
        broker.stop()
