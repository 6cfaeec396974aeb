"""``emberlake sessions list|show|fork|ref`` over a local session store."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from pathlib import Path

from click.testing import CliRunner

from agents.llm.base import ToolUse
from agents.sessions import SessionLeases, SessionStore, store_for
from emberlake.cli import cli
from emberlake.settings import Settings, to_env

from .enginekit import EchoTool, ScriptedModel, engine, say, start


def run(settings: Settings, *args: str) -> str:
    result = CliRunner().invoke(cli, list(args), env=to_env(settings), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_list_show_fork_and_ref(tmp_path: Path) -> None:
    settings = Settings(data_dir=str(tmp_path / "data"))
    sessions = SessionStore(store_for(settings))
    start(sessions)
    script = [
        say("querying", ToolUse("t1", "echo", {"q": 1}), tokens=40),
        say("all done", tokens=10),
    ]
    engine(sessions, ScriptedModel(script), [EchoTool()]).run("acme/s1")

    listed = json.loads(run(settings, "sessions", "list", "--json"))
    assert listed["sessions"][0]["session"] == "acme/s1"
    assert listed["sessions"][0]["status"] == "done"
    assert listed["tenant_usage"] == {"acme": {"input_tokens": 50, "output_tokens": 25}}
    assert "acme/s1" in run(settings, "sessions", "list")

    shown = run(settings, "sessions", "show", "acme/s1")
    assert "status done, 2 steps" in shown and "[tool_call]" in shown and "all done" in shown
    at_one = json.loads(run(settings, "sessions", "show", "acme/s1@1", "--json"))
    assert [o["kind"] for o in at_one["objects"]][-1] == "tool_result"

    out = run(settings, "sessions", "fork", "acme/s1@1", "acme/s1-retry")
    assert "forked acme/s1@1 into acme/s1-retry" in out
    fork = sessions.head("acme/s1-retry")
    assert fork.seq == 0 and fork.address == at_one["snapshot"]
    assert fork.state.status == "running"  # a worker picks it up from there

    run(settings, "sessions", "ref", "acme/before-answer", "acme/s1@1")
    assert run(settings, "sessions", "ref", "acme/before-answer").strip() == at_one["snapshot"]
    by_ref = json.loads(run(settings, "sessions", "show", "acme/before-answer", "--json"))
    # The same snapshot; a reference names no session, so no session and no lease are shown.
    assert (by_ref["session"], by_ref["lease"], at_one["session"]) == (None, None, "acme/s1")
    assert {k: v for k, v in by_ref.items() if k not in ("session", "lease")} == {
        k: v for k, v in at_one.items() if k not in ("session", "lease")
    }


def test_errors_are_messages_not_tracebacks(tmp_path: Path) -> None:
    settings = Settings(data_dir=str(tmp_path / "data"))
    result = CliRunner().invoke(cli, ["sessions", "show", "acme/nope"], env=to_env(settings))
    assert result.exit_code != 0 and "names no snapshot" in result.output


def test_show_tells_the_lease(tmp_path: Path) -> None:
    settings = Settings(data_dir=str(tmp_path / "data"))
    sessions = SessionStore(store_for(settings))
    start(sessions)
    engine(sessions, ScriptedModel([say("all done", tokens=10)]), [EchoTool()]).run("acme/s1")

    never = json.loads(run(settings, "sessions", "show", "acme/s1", "--json"))
    assert never["session"] == "acme/s1" and never["lease"] is None
    assert "lease never taken" in run(settings, "sessions", "show", "acme/s1")

    leases = SessionLeases(sessions.store, "host-a-1f2e3d4c", seconds=30.0)
    held = leases.acquire("acme/s1")
    assert held is not None
    text = run(settings, "sessions", "show", "acme/s1")
    expires = dt.datetime.fromtimestamp(held.expires_at, dt.UTC)
    iso = expires.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert re.search(rf"lease held by host-a-1f2e3d4c until {iso} \(in (29|30) s, epoch 1\)", text)
    shown = json.loads(run(settings, "sessions", "show", "acme/s1@1", "--json"))
    assert shown["lease"] == {
        "holder": "host-a-1f2e3d4c",
        "epoch": 1,
        "expires_at": iso,
        "released": False,
        "live": True,
    }

    assert leases.release(held)
    text = run(settings, "sessions", "show", "acme/s1")
    assert "lease released by host-a-1f2e3d4c at" in text and "(epoch 2)" in text
    lease = json.loads(run(settings, "sessions", "show", "acme/s1", "--json"))["lease"]
    assert (lease["epoch"], lease["released"], lease["live"]) == (2, True, False)

    # A holder that died: its lease ran out on its own.
    sessions.fork("acme/s1@0", "acme/s2")
    SessionLeases(sessions.store, "gone", 5.0, clock=lambda: time.time() - 65).acquire("acme/s2")
    text = run(settings, "sessions", "show", "acme/s2")
    assert re.search(r"lease expired at \S+ \(6[01] s ago\), last held by gone \(epoch 1\)", text)

    # An address names a snapshot, not a session: no lease to show.
    by_address = json.loads(run(settings, "sessions", "show", shown["snapshot"], "--json"))
    assert by_address["session"] is None and by_address["lease"] is None
    assert "lease" not in run(settings, "sessions", "show", shown["snapshot"]).split("\n\n")[0]
