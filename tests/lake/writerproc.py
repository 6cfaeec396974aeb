"""The lake writer as its own process (``emberlake writer``), as the supervisor runs it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from emberlake.settings import Settings, to_env


class WriterProcess:
    """``python -m emberlake.cli writer`` with the test's settings in its environment."""

    def __init__(self, settings: Settings, log_path: Path):
        self.settings = settings
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WriterProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EMBERLAKE_")}
        env.update(to_env(self.settings))
        env["EMBERLAKE_LOG_LEVEL"] = "INFO"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "emberlake.cli", "writer", "--drain-seconds", "5"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return self

    def kill(self) -> None:
        """SIGKILL: no flush, no goodbye to the group."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM and wait for the graceful exit; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
