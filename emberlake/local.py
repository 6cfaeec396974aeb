"""A whole local emberlake system in a subprocess (``emberlake up``): for tests and benchmarks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emberlake.broker import wait_for_port
from emberlake.errors import EmberlakeError, QueryError


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children run in their own sessions, so signals to the
    parent's group do not reach them)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


@dataclass
class LocalSystem:
    """``emberlake up`` with its own data folder, ports and embedded broker (or a given one)."""

    data_dir: Path
    bootstrap_servers: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)
    only: tuple[str, ...] = ()
    grpc_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    query_port: int = field(default_factory=free_port)
    broker_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("EMBERLAKE_", "OTEL_"))}
        env.update(
            {
                "EMBERLAKE_DATA_DIR": str(self.data_dir),
                "EMBERLAKE_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
                "EMBERLAKE_KAFKA_EMBEDDED_PORT": str(self.broker_port),
                "EMBERLAKE_RECEIVER_GRPC_PORT": str(self.grpc_port),
                "EMBERLAKE_RECEIVER_HTTP_PORT": str(self.http_port),
                "EMBERLAKE_QUERYD_PORT": str(self.query_port),
                "EMBERLAKE_LAKE_BATCH_MAX_SECONDS": "0.5",
                "EMBERLAKE_LAKE_COMPACT_INTERVAL_SECONDS": "5",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.extra_env)
        return env

    @property
    def query_url(self) -> str:
        return f"http://127.0.0.1:{self.query_port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "up.log"

    def start(self, timeout: float = 60.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [sys.executable, "-m", "emberlake.cli", "up"]
        for name in self.only:
            args += ["--only", name]
        self.proc = subprocess.Popen(
            args,
            env=self.env,
            stdout=self.log_path.open("ab"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        ports = [self.grpc_port, self.http_port, self.query_port]
        for port in ports:
            try:
                wait_for_port("127.0.0.1", port, max(1.0, deadline - time.monotonic()))
            except Exception as exc:
                raise EmberlakeError(f"system did not start: {exc}\n{self.logs()}") from None

    def logs(self) -> str:
        out = []
        for path in [self.log_path, *sorted((self.data_dir / "logs").glob("*.log"))]:
            if path.exists():
                out.append(f"--- {path.name}\n{path.read_text(errors='replace')[-4000:]}")
        return "\n".join(out)

    def stop(self, timeout: float = 120.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            for pid in descendants(self.proc.pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc.kill()
            self.proc.wait()
            raise EmberlakeError(
                f"emberlake up did not stop in {timeout}s\n{self.logs()}"
            ) from None

    def query(self, sql: str, tenant: str | None = None) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        if tenant:
            headers["x-emberlake-tenant"] = tenant
        req = urllib.request.Request(
            self.query_url + "/v1/query", json.dumps({"sql": sql}).encode(), headers
        )
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                result: dict[str, Any] = json.loads(resp.read())
                return result
        except urllib.error.HTTPError as exc:
            raise QueryError(f"query failed {exc.code}: {exc.read()!r}") from None
        except urllib.error.URLError as exc:
            raise QueryError(f"query daemon unreachable: {exc.reason}") from None

    def wait_rows(
        self, sql: str, expected: int, timeout: float = 60.0, tenant: str | None = None
    ) -> dict[str, Any]:
        """Poll until the first cell of the query equals ``expected`` (or time out)."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = self.query(sql, tenant)
                if last["rows"] and last["rows"][0][0] == expected:
                    return last
            except QueryError as exc:
                last = str(exc)
            time.sleep(0.5)
        raise EmberlakeError(f"{sql!r}: wanted {expected}, last {last}\n{self.logs()}")
