"""``emberlake sessions list|show|fork|ref`` over a local session store."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from agents.llm.base import ToolUse
from agents.sessions import SessionStore, store_for
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
    assert json.loads(run(settings, "sessions", "show", "acme/before-answer", "--json")) == at_one


def test_errors_are_messages_not_tracebacks(tmp_path: Path) -> None:
    settings = Settings(data_dir=str(tmp_path / "data"))
    result = CliRunner().invoke(cli, ["sessions", "show", "acme/nope"], env=to_env(settings))
    assert result.exit_code != 0 and "names no snapshot" in result.output
