"""Worker ids: stable across restarts, never shared by two live workers of one data folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agents.worker_identity import claim_worker_id
from emberlake.errors import ConfigError
from emberlake.settings import AgentSettings, Settings, to_env


def settings_in(root: Path, worker_id: str = "") -> Settings:
    return Settings(data_dir=str(root / "data"), agents=AgentSettings(worker_id=worker_id))


def claim_in_child(settings: Settings, hold: bool = False) -> subprocess.Popen[str]:
    """A separate process that claims an id, prints it, and (with ``hold``) keeps it."""
    code = (
        "from emberlake.settings import load_settings\n"
        "from agents.worker_identity import claim_worker_id\n"
        "i = claim_worker_id(load_settings())\n"
        "print(i.id, flush=True)\n" + ("import sys; sys.stdin.read()\n" if hold else "")
    )
    return subprocess.Popen(
        [sys.executable, "-c", code],
        env=to_env(settings),
        cwd=str(settings.data_path.parent),  # no developer's emberlake.toml
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_the_id_is_stable_per_data_folder_and_each_live_worker_gets_its_own(
    tmp_path: Path,
) -> None:
    settings = settings_in(tmp_path)
    first = claim_worker_id(settings)
    second = claim_worker_id(settings)  # another live worker on the same folder
    assert second.id == f"{first.id}-2"
    first.close()
    again = claim_worker_id(settings)  # the first one, restarted
    assert again.id == first.id
    other_folder = claim_worker_id(settings_in(tmp_path / "elsewhere"))
    assert other_folder.id != first.id
    for identity in (second, again, other_folder):
        identity.close()


def test_a_killed_process_leaves_its_id_to_its_successor(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    holder = claim_in_child(settings, hold=True)
    assert holder.stdout is not None
    held = holder.stdout.readline().strip()
    assert held
    # While it lives, another process gets another id.
    out, err = claim_in_child(settings).communicate(timeout=60)
    assert out.strip() == f"{held}-2", err
    holder.kill()  # SIGKILL: the kernel drops its lock
    holder.communicate(timeout=30)
    out, err = claim_in_child(settings).communicate(timeout=60)
    assert out.strip() == held, err


def test_an_explicit_id_is_kept_to_one_live_worker(tmp_path: Path) -> None:
    settings = settings_in(tmp_path, worker_id="agents-a")
    holder = claim_in_child(settings, hold=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "agents-a"
    try:
        with pytest.raises(ConfigError, match=rf"in use by a live worker \(pid {holder.pid}\)"):
            claim_worker_id(settings)
    finally:
        holder.kill()
        holder.communicate(timeout=30)
    identity = claim_worker_id(settings)
    assert identity.id == "agents-a"
    identity.close()
    with pytest.raises(ConfigError, match="not a valid id"):
        claim_worker_id(settings_in(tmp_path, worker_id="a/b"))
