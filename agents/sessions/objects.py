"""The immutable objects a session is made of, their canonical bytes and content addresses.

A session is a sequence of objects: the system prompt, user messages, assistant messages, the tool
calls an assistant made and the results of those calls. Each object is canonical JSON (sorted
keys, no whitespace, UTF-8) and is addressed by the SHA-256 of those bytes, so an object is stored
once however many sessions and snapshots refer to it, and a reader can verify what it got.

This module is pure: it turns objects into bytes and back, and a list of objects into the
message list a model reads (:func:`transcript`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from emberlake.errors import CorruptObject

Kind = Literal["system", "user", "assistant", "tool_call", "tool_result"]
KINDS: tuple[Kind, ...] = ("system", "user", "assistant", "tool_call", "tool_result")


def canonical_json(value: Any) -> bytes:
    """The one byte form of a JSON value: sorted keys, no spaces, UTF-8, no NaN."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def content_address(data: bytes) -> str:
    """The address of some bytes: lower-case hex SHA-256."""
    return hashlib.sha256(data).hexdigest()


def is_address(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


@dataclass(frozen=True)
class SessionObject:
    """One immutable element of a session: a kind and a JSON body."""

    kind: Kind
    body: Mapping[str, Any]
    _bytes: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown session object kind {self.kind!r}")
        object.__setattr__(self, "_bytes", canonical_json({"kind": self.kind, "body": self.body}))

    @property
    def data(self) -> bytes:
        """Canonical bytes; the address is their hash."""
        return self._bytes

    @property
    def address(self) -> str:
        return content_address(self._bytes)

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(self.address, self.kind)

    @classmethod
    def from_bytes(cls, data: bytes, expected: str | None = None) -> SessionObject:
        """Parse stored bytes, checking them against the address they were fetched by."""
        if expected is not None and content_address(data) != expected:
            raise CorruptObject(f"object {expected[:12]} does not match its content address")
        try:
            raw = json.loads(data)
            return cls(raw["kind"], raw["body"])
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptObject(
                f"object {(expected or '?')[:12]} is not a session object: {exc}"
            ) from None


@dataclass(frozen=True)
class Descriptor:
    """How a snapshot refers to an object: its address and kind."""

    address: str
    kind: Kind

    def to_json(self) -> dict[str, str]:
        return {"address": self.address, "kind": self.kind}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Descriptor:
        return cls(str(raw["address"]), cast(Kind, raw["kind"]))


# Constructors: one per kind, so every object of a kind has the same body shape.


def system_prompt(text: str) -> SessionObject:
    return SessionObject("system", {"text": text})


def user_message(text: str) -> SessionObject:
    return SessionObject("user", {"text": text})


def assistant_message(
    text: str, *, model: str, stop_reason: str, usage: Mapping[str, int]
) -> SessionObject:
    """What the model said in one turn (its tool calls follow as their own objects)."""
    return SessionObject(
        "assistant",
        {"text": text, "model": model, "stop_reason": stop_reason, "usage": dict(usage)},
    )


def tool_call(call_id: str, name: str, arguments: Mapping[str, Any]) -> SessionObject:
    return SessionObject("tool_call", {"id": call_id, "name": name, "input": dict(arguments)})


def tool_result(call_id: str, content: str, is_error: bool = False) -> SessionObject:
    return SessionObject(
        "tool_result", {"tool_use_id": call_id, "content": content, "is_error": is_error}
    )


def transcript(objects: Iterable[SessionObject]) -> list[dict[str, Any]]:
    """The message list a model reads, in the Messages API shape.

    The system prompt comes first as ``{"role": "system", "content": text}``; tool calls join the
    assistant message before them as ``tool_use`` blocks; consecutive results and user texts
    merge into one user message, as the API wants tool results right after the call.
    """
    messages: list[dict[str, Any]] = []

    def tail(role: str) -> list[dict[str, Any]]:
        if not messages or messages[-1]["role"] != role or role == "system":
            messages.append({"role": role, "content": []})
        content: list[dict[str, Any]] = messages[-1]["content"]
        return content

    for obj in objects:
        body = obj.body
        if obj.kind == "system":
            messages.append({"role": "system", "content": body["text"]})
        elif obj.kind == "user":
            tail("user").append({"type": "text", "text": body["text"]})
        elif obj.kind == "assistant":
            messages.append({"role": "assistant", "content": []})
            if body["text"]:
                messages[-1]["content"].append({"type": "text", "text": body["text"]})
        elif obj.kind == "tool_call":
            tail("assistant").append(
                {"type": "tool_use", "id": body["id"], "name": body["name"], "input": body["input"]}
            )
        else:
            tail("user").append(
                {
                    "type": "tool_result",
                    "tool_use_id": body["tool_use_id"],
                    "content": body["content"],
                    "is_error": body["is_error"],
                }
            )
    return messages


def render(objects: Sequence[SessionObject], width: int = 100) -> str:
    """A readable transcript for people (``emberlake sessions show``)."""
    lines: list[str] = []
    for obj in objects:
        body = obj.body
        head = f"[{obj.kind}] {obj.address[:12]}"
        if obj.kind in ("system", "user"):
            lines += [head, _indent(body["text"], width)]
        elif obj.kind == "assistant":
            usage = body.get("usage", {})
            lines.append(
                f"{head} model={body['model']} stop={body['stop_reason']} "
                f"tokens={usage.get('input_tokens', 0)}+{usage.get('output_tokens', 0)}"
            )
            if body["text"]:
                lines.append(_indent(body["text"], width))
        elif obj.kind == "tool_call":
            lines.append(f"{head} {body['name']} id={body['id']}")
            lines.append(_indent(_short(body["input"]), width))
        else:
            flag = " ERROR" if body["is_error"] else ""
            lines += [f"{head} for {body['tool_use_id']}{flag}", _indent(body["content"], width)]
    return "\n".join(lines)


def _short(value: Any, limit: int = 2000) -> str:
    text = json.dumps(value, indent=1, sort_keys=True)
    return text if len(text) <= limit else text[:limit] + " ..."


def _indent(text: str, width: int, limit: int = 4000) -> str:
    if len(text) > limit:
        text = text[:limit] + f" ... ({len(text) - limit} more characters)"
    return "\n".join("    " + line[: width * 4] for line in text.splitlines() or [""])
