"""A Linux-namespace sandbox for the shell tool, built with bubblewrap (Debian ``bubblewrap``).

Inside the sandbox a command runs as an unprivileged user with:

- no network: a fresh network namespace with only its own loopback, so nothing on the host, not
  even 127.0.0.1, is reachable;
- a read-only view of the host's file system, with /tmp, /var/tmp, /run, /root, /home and the
  emberlake data folder replaced by empty read-only folders, and only its scratch folder writable;
- its own PID namespace, so killing the sandbox kills every process it started;
- CPU-time, address-space, process-count, file-size and open-file limits (``setrlimit``), and a
  wall-clock limit after which the whole process group is killed.

When running as root the sandbox first drops to ``nobody`` (``setpriv``) so that the process
limit applies (it does not bind root) and no capability survives. :meth:`BubblewrapSandbox.probe`
tries all of this once; if it fails the shell tool is disabled and says why. Nothing ever runs
unsandboxed.
"""

from __future__ import annotations

import hashlib
import os
import resource
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from emberlake.errors import SandboxUnavailable

NOBODY = 65534
#: Host folders the sandbox must neither see nor write (each becomes an empty read-only tmpfs).
HIDDEN = ("/tmp", "/var/tmp", "/run", "/root", "/home", "/dev/shm")


@dataclass(frozen=True)
class Limits:
    """What one sandboxed command may use."""

    timeout_seconds: float = 20.0
    memory_mb: int = 512
    max_processes: int = 64
    file_mb: int = 64
    open_files: int = 256
    #: Bytes of stdout and of stderr kept for the caller.
    output_bytes: int = 64 * 1024


@dataclass(frozen=True)
class Completed:
    """How a sandboxed command ended."""

    returncode: int
    stdout: str
    stderr: str
    timed_out: bool
    elapsed_seconds: float


class BubblewrapSandbox:
    """Runs commands under bwrap with the limits given; see the module docs."""

    def __init__(self, limits: Limits, hidden: Sequence[Path] = (), bwrap: str | None = None):
        self.limits = limits
        self.hidden = tuple(Path(p).resolve() for p in hidden)
        found = shutil.which(bwrap or "bwrap")
        if not found:
            raise SandboxUnavailable(
                "the shell tool needs bubblewrap: install the Debian package 'bubblewrap'"
            )
        self.bwrap = found
        self.as_root = os.geteuid() == 0
        if self.as_root and not shutil.which("setpriv"):
            raise SandboxUnavailable("running as root needs setpriv (package util-linux)")

    def _argv(self, command: Sequence[str], scratch: Path) -> list[str]:
        prefix: list[str] = []
        if self.as_root:
            prefix = [
                "setpriv",
                f"--reuid={NOBODY}",
                f"--regid={NOBODY}",
                "--clear-groups",
                "--inh-caps=-all",
                "--bounding-set=-all",
                "--",
            ]
        args = [
            self.bwrap,
            "--unshare-all",
            "--die-with-parent",
            "--new-session",
            "--hostname",
            "sandbox",
            "--ro-bind",
            "/",
            "/",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
        ]
        # Parents before children: a folder hidden inside another is mounted on the new tmpfs.
        hide = sorted(
            {Path(h) for h in HIDDEN if Path(h).exists()} | {h for h in self.hidden if h.exists()},
            key=lambda p: (len(p.parts), str(p)),
        )
        for path in hide:
            args += ["--tmpfs", str(path)]
        args += ["--bind", str(scratch), str(scratch)]
        for path in hide:
            args += ["--remount-ro", str(path)]
        args += [
            "--chdir",
            str(scratch),
            "--clearenv",
            "--setenv",
            "HOME",
            str(scratch),
            "--setenv",
            "TMPDIR",
            str(scratch),
            "--setenv",
            "PATH",
            "/usr/local/bin:/usr/bin:/bin",
            "--setenv",
            "LANG",
            "C.UTF-8",
            "--",
            *command,
        ]
        return prefix + args

    def _limit(self) -> None:
        """Runs in the child before exec: the limits every sandboxed process inherits."""
        lim = self.limits
        cpu = max(1, int(lim.timeout_seconds) + 1)
        memory = lim.memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_NPROC, (lim.max_processes, lim.max_processes))
        resource.setrlimit(resource.RLIMIT_FSIZE, (lim.file_mb << 20, lim.file_mb << 20))
        resource.setrlimit(resource.RLIMIT_NOFILE, (lim.open_files, lim.open_files))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    def prepare(self, scratch: Path) -> Path:
        """Create the scratch folder, owned by the sandbox user."""
        scratch = Path(scratch).resolve()
        if self.as_root:
            # bwrap runs as nobody and must reach the folder: every parent needs o+x.
            for parent in scratch.parents:
                if parent.exists() and not parent.stat().st_mode & stat.S_IXOTH:
                    raise SandboxUnavailable(
                        f"the sandbox user cannot reach {scratch}: {parent} is not searchable by"
                        " others; put scratch folders under scratch_root_for(...)"
                    )
        for parent in reversed(scratch.parents):
            if not parent.exists():
                parent.mkdir(mode=0o711, exist_ok=True)
        scratch.mkdir(exist_ok=True)
        if self.as_root:
            os.chown(scratch, NOBODY, NOBODY)
        scratch.chmod(0o700)
        return scratch

    def run(self, command: Sequence[str], scratch: Path, timeout: float | None = None) -> Completed:
        """Run ``command`` in the sandbox with ``scratch`` as its only writable folder."""
        scratch = self.prepare(scratch)
        limit = min(timeout or self.limits.timeout_seconds, self.limits.timeout_seconds)
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="emberlake-shell-") as out:
            out_path, err_path = Path(out, "stdout"), Path(out, "stderr")
            with out_path.open("wb") as stdout, err_path.open("wb") as stderr:
                proc = subprocess.Popen(
                    self._argv(command, scratch),
                    stdin=subprocess.DEVNULL,
                    stdout=stdout,
                    stderr=stderr,
                    preexec_fn=self._limit,  # noqa: PLW1509 - limits must be set before exec
                    start_new_session=True,
                    close_fds=True,
                )
                timed_out = False
                try:
                    proc.wait(timeout=limit)
                except subprocess.TimeoutExpired:
                    timed_out = True
                finally:
                    # Always: a command that exited may have left children behind in its group.
                    _kill_group(proc)
            return Completed(
                returncode=proc.returncode if proc.returncode is not None else -9,
                stdout=_head(out_path, self.limits.output_bytes),
                stderr=_head(err_path, self.limits.output_bytes),
                timed_out=timed_out,
                elapsed_seconds=round(time.monotonic() - started, 3),
            )

    @classmethod
    def probe(
        cls,
        limits: Limits,
        hidden: Sequence[Path] = (),
        workdir: Path | None = None,
        bwrap: str | None = None,
    ) -> BubblewrapSandbox:
        """A sandbox proven to work here, or :class:`SandboxUnavailable` saying why not."""
        sandbox = cls(limits, hidden, bwrap)
        with tempfile.TemporaryDirectory(prefix="emberlake-probe-", dir=workdir) as tmp:
            try:
                done = sandbox.run(["/bin/sh", "-c", "echo ok > probe && cat probe"], Path(tmp))
            except OSError as exc:
                raise SandboxUnavailable(f"the shell sandbox cannot start: {exc}") from None
        if done.returncode != 0 or done.stdout.strip() != "ok":
            raise SandboxUnavailable(
                "the shell sandbox cannot be built here (user namespaces may be disabled):"
                f" bwrap exited {done.returncode}: {done.stderr.strip()[:300]}"
            )
        return sandbox


def scratch_root_for(owner: Path) -> Path:
    """A folder for the sandboxes of one emberlake data folder that the sandbox user can reach.

    The data folder itself may sit under a private home; the system temporary folder is always
    searchable. Folders are made on first use, 0711: others may enter a folder they know but not
    list which exist.
    """
    digest = hashlib.sha256(str(Path(owner).resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"emberlake-sandbox-{os.geteuid()}-{digest}"


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _head(path: Path, limit: int) -> str:
    with path.open("rb") as fh:
        data = fh.read(limit + 1)
    text = data[:limit].decode("utf-8", errors="replace")
    if len(data) > limit:
        text += f"\n... (output cut at {limit} bytes)"
    return text
