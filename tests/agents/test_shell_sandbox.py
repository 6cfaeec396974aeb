"""The shell tool's sandbox, for real: no network, one writable folder, limits that hold.

These tests need bubblewrap (Debian package ``bubblewrap``) and user namespaces; where the
sandbox cannot be built they fail, as the tool would be disabled.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agents.tools.sandbox import BubblewrapSandbox, Limits, scratch_root_for
from agents.tools.shell import ShellTool
from emberlake.errors import SandboxUnavailable

pytestmark = pytest.mark.integration  # a real bubblewrap sandbox


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[Path]:
    """A parent for scratch folders that the unprivileged sandbox user can reach.

    pytest's own temporary folders are private to root (0700); the sandbox drops to nobody, so
    its folders go under a reachable root named after this test's temporary folder.
    """
    root = scratch_root_for(tmp_path)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> BubblewrapSandbox:
    hidden = tmp_path_factory.mktemp("data")
    (hidden / "secret").write_text("tenant data")
    return BubblewrapSandbox.probe(
        Limits(timeout_seconds=3, memory_mb=256, max_processes=32), hidden=[hidden]
    )


def run(sandbox: BubblewrapSandbox, script: str, scratch: Path, timeout: float | None = None):  # type: ignore[no-untyped-def]
    return sandbox.run(["/bin/bash", "-c", script], scratch, timeout)


def test_runs_as_nobody_in_its_scratch_folder(
    sandbox: BubblewrapSandbox, scratch: Path, tmp_path: Path
) -> None:
    done = run(sandbox, "id -u; pwd; echo hello > out.txt; cat out.txt", scratch / "s")
    assert done.returncode == 0, done.stderr
    uid, cwd, text = done.stdout.split()
    assert uid != "0"
    assert cwd == str((scratch / "s").resolve())
    assert text == "hello"
    assert (scratch / "s" / "out.txt").read_text() == "hello\n"


def test_cannot_reach_the_network_not_even_loopback(
    sandbox: BubblewrapSandbox, scratch: Path, tmp_path: Path
) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    accepted: list[object] = []

    def accept() -> None:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            try:
                accepted.append(listener.accept())
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept)
    thread.start()
    script = (
        "python3 - <<'EOF'\n"
        "import socket\n"
        "for host in ('127.0.0.1', '10.0.0.1', '1.1.1.1'):\n"
        "    try:\n"
        f"        socket.create_connection((host, {port}), timeout=1).close()\n"
        "        print('open', host)\n"
        "    except OSError as exc:\n"
        "        print('blocked', host, type(exc).__name__)\n"
        "EOF\n"
        "cat /sys/class/net/*/operstate 2>/dev/null | sort | uniq -c"
    )
    done = run(sandbox, script, scratch / "s")
    thread.join()
    listener.close()
    assert "open" not in done.stdout.split(), done.stdout
    assert done.stdout.count("blocked") == 3
    assert accepted == []


def test_cannot_write_outside_its_folder(
    sandbox: BubblewrapSandbox, scratch: Path, tmp_path: Path
) -> None:
    home = Path.home()
    repo = Path(__file__).resolve().parents[2]
    targets = [
        repo / "sandbox-escape",
        Path(tempfile.gettempdir()) / "sandbox-escape",
        home / "sandbox-escape",
        tmp_path / "sandbox-escape",
        scratch / "sandbox-escape",
        Path("/var/tmp/sandbox-escape"),
    ]
    script = "; ".join(f"echo x > {t} 2>/dev/null && echo WROTE {t}" for t in targets)
    done = run(sandbox, script + "; true", scratch / "s")
    assert "WROTE" not in done.stdout, done.stdout
    for target in targets:
        assert not target.exists()


def test_hidden_folders_are_empty_inside(
    sandbox: BubblewrapSandbox, scratch: Path, tmp_path: Path
) -> None:
    hidden = sandbox.hidden[0]
    done = run(sandbox, f"ls -A {hidden} /root /tmp | grep -v : ; env | sort", scratch / "s")
    assert "secret" not in done.stdout
    assert "EMBERLAKE" not in done.stdout and "ANTHROPIC" not in done.stdout


def _alive_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in cmdline and "bash -c" not in cmdline:
            found.append(int(entry.name))
    return found


def test_time_limit_kills_the_command_and_its_children(
    sandbox: BubblewrapSandbox, scratch: Path, tmp_path: Path
) -> None:
    started = time.monotonic()
    done = run(sandbox, "sleep 100.25 & sleep 100.5 & disown; sleep 100.75", scratch / "s", 1.5)
    assert done.timed_out and done.returncode != 0
    assert time.monotonic() - started < 5
    deadline = time.monotonic() + 3
    while _alive_with("sleep 100.") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _alive_with("sleep 100.") == []


def test_memory_limit_is_enforced(
    sandbox: BubblewrapSandbox, scratch: Path, tmp_path: Path
) -> None:
    done = run(
        sandbox, "python3 -c 'b = bytearray(400 * 1024 * 1024); print(len(b))'", scratch / "s"
    )
    assert done.returncode != 0
    assert "MemoryError" in done.stderr
    script = "python3 -c 'b = bytearray(50 * 1024 * 1024); print(len(b))'"
    small = run(sandbox, script, scratch / "s")
    assert small.returncode == 0 and small.stdout.strip() == str(50 * 1024 * 1024)


def test_process_limit_is_enforced(
    sandbox: BubblewrapSandbox, scratch: Path, tmp_path: Path
) -> None:
    done = run(
        sandbox,
        "n=0; for i in $(seq 80); do (sleep 2) 2>/dev/null & n=$((n+1)); done; "
        "echo started; jobs -r | wc -l",
        scratch / "s",
    )
    assert "Resource temporarily unavailable" in done.stderr or done.timed_out
    running = [int(x) for x in done.stdout.split() if x.isdigit()]
    assert not running or running[-1] < 32


def test_shell_tool_reports_output_and_exit_code(
    sandbox: BubblewrapSandbox, scratch: Path, tmp_path: Path
) -> None:
    tool = ShellTool(sandbox, scratch / "scratch")
    out = tool.run({"script": "echo 6*7 | bc 2>/dev/null || python3 -c 'print(6*7)'"})
    assert not out.is_error and json.loads(out.content)["stdout"].strip() == "42"
    failed = tool.run({"script": "echo oops >&2; exit 3"})
    body = json.loads(failed.content)
    assert failed.is_error and body["exit_code"] == 3 and body["stderr"].strip() == "oops"


def test_disabled_tool_says_why_and_runs_nothing(tmp_path: Path) -> None:
    tool = ShellTool(SandboxUnavailable("bubblewrap is missing"), tmp_path / "scratch")
    out = tool.run({"script": f"touch {tmp_path}/ran"})
    assert out.is_error and "disabled: bubblewrap is missing" in out.content
    assert "DISABLED" in tool.spec.description
    assert not (tmp_path / "ran").exists()


def test_missing_bwrap_disables_the_sandbox(tmp_path: Path) -> None:
    with pytest.raises(SandboxUnavailable, match="bubblewrap"):
        BubblewrapSandbox.probe(Limits(), bwrap=str(tmp_path / "no-bwrap"))


@pytest.mark.skipif(os.geteuid() != 0, reason="only root drops to a user that cannot reach it")
def test_unreachable_scratch_folder_is_refused_not_run(
    sandbox: BubblewrapSandbox, tmp_path: Path
) -> None:
    tmp_path.chmod(0o700)
    with pytest.raises(SandboxUnavailable, match="cannot reach"):
        run(sandbox, "true", tmp_path / "private" / "s")
