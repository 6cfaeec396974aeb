"""Session objects: canonical bytes, content addresses and the transcript a model reads."""

from __future__ import annotations

import pytest

from agents.sessions import objects as o
from emberlake.errors import CorruptObject


def test_canonical_bytes_do_not_depend_on_key_order() -> None:
    a = o.SessionObject("tool_call", {"id": "t1", "name": "sql", "input": {"b": 1, "a": "é"}})
    b = o.SessionObject("tool_call", {"input": {"a": "é", "b": 1}, "name": "sql", "id": "t1"})
    assert a.data == b.data
    assert a.address == b.address
    assert (
        a.data
        == '{"body":{"id":"t1","input":{"a":"é","b":1},"name":"sql"},"kind":"tool_call"}'.encode()
    )
    assert len(a.address) == 64


def test_different_content_different_address() -> None:
    assert o.user_message("a").address != o.user_message("b").address
    assert o.user_message("a").address != o.system_prompt("a").address


def test_round_trip_and_tamper_detection() -> None:
    obj = o.tool_result("t1", "rows", is_error=False)
    again = o.SessionObject.from_bytes(obj.data, expected=obj.address)
    assert again == obj
    with pytest.raises(CorruptObject):
        o.SessionObject.from_bytes(obj.data.replace(b"rows", b"lies"), expected=obj.address)
    with pytest.raises(ValueError):
        o.SessionObject("note", {})  # type: ignore[arg-type]


def test_transcript_groups_tool_calls_and_results() -> None:
    objs = [
        o.system_prompt("be precise"),
        o.user_message("investigate"),
        o.assistant_message("looking", model="m", stop_reason="tool_use", usage={}),
        o.tool_call("t1", "sql", {"sql": "SELECT 1"}),
        o.tool_call("t2", "sql", {"sql": "SELECT 2"}),
        o.tool_result("t1", "one"),
        o.tool_result("t2", "boom", is_error=True),
        o.assistant_message("", model="m", stop_reason="tool_use", usage={}),
        o.tool_call("t3", "resources", {"method": "get"}),
        o.tool_result("t3", "ok"),
        o.user_message("approved by alice"),
        o.assistant_message("done", model="m", stop_reason="end_turn", usage={}),
    ]
    messages = o.transcript(objs)
    assert [m["role"] for m in messages] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
        "assistant",
    ]
    assert messages[0]["content"] == "be precise"
    assert [b["type"] for b in messages[2]["content"]] == ["text", "tool_use", "tool_use"]
    assert messages[3]["content"][1] == {
        "type": "tool_result",
        "tool_use_id": "t2",
        "content": "boom",
        "is_error": True,
    }
    # An assistant turn with no text has only its tool_use block.
    assert messages[4]["content"] == [
        {"type": "tool_use", "id": "t3", "name": "resources", "input": {"method": "get"}}
    ]
    assert [b["type"] for b in messages[5]["content"]] == ["tool_result", "text"]
    assert "sql id=t1" in o.render(objs)
