"""A fake Anthropic Messages API on 127.0.0.1 for tests: JSON responses and SSE streams.

``FakeMessagesAPI(responder)`` serves ``POST /v1/messages``. The responder takes the request body
and returns a message dict (``content`` blocks, ``stop_reason``, ``usage``); the server answers it
as one JSON body, or, when the request asks ``"stream": true``, as the server-sent event sequence
the real API sends (message_start, content_block_start/delta/stop with text_delta and
input_json_delta, message_delta, message_stop). Every request is recorded with its headers.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Responder = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass
class Recorded:
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class FakeMessagesAPI:
    responder: Responder
    requests: list[Recorded] = field(default_factory=list)
    fail_next: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return None

            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                length = int(self.headers.get("content-length", "0"))
                body = json.loads(self.rfile.read(length))
                api.requests.append(Recorded({k.lower(): v for k, v in self.headers.items()}, body))
                if self.path.split("?")[0] != "/v1/messages":
                    return self._json(
                        404,
                        {
                            "type": "error",
                            "error": {"type": "not_found_error", "message": self.path},
                        },
                    )
                if api.fail_next:
                    status = api.fail_next.pop(0)
                    return self._json(
                        status,
                        {
                            "type": "error",
                            "error": {"type": "api_error", "message": "scripted failure"},
                        },
                    )
                message = complete_message(api.responder(body), body.get("model", "claude-test"))
                if body.get("stream"):
                    self.send_response(200)
                    self.send_header("content-type", "text/event-stream")
                    self.send_header("cache-control", "no-cache")
                    self.end_headers()
                    for event, data in sse_events(message):
                        self.wfile.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())
                        self.wfile.flush()
                    return None
                return self._json(200, message)

            def _json(self, status: int, value: dict[str, Any]) -> None:
                data = json.dumps(value).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def complete_message(partial: dict[str, Any], model: str) -> dict[str, Any]:
    return {
        "id": partial.get("id", f"msg_{uuid.uuid4().hex[:20]}"),
        "type": "message",
        "role": "assistant",
        "model": partial.get("model", model),
        "content": partial["content"],
        "stop_reason": partial.get("stop_reason", "end_turn"),
        "stop_sequence": None,
        "usage": partial.get("usage", {"input_tokens": 10, "output_tokens": 5}),
    }


def sse_events(message: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    usage = message["usage"]
    start = {
        **message,
        "content": [],
        "stop_reason": None,
        "usage": {"input_tokens": usage["input_tokens"], "output_tokens": 1},
    }
    yield "message_start", {"type": "message_start", "message": start}
    for i, block in enumerate(message["content"]):
        if block["type"] == "text":
            yield (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": i,
                    "content_block": {"type": "text", "text": ""},
                },
            )
            text = block["text"]
            for j in range(0, len(text), 7):
                yield (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": i,
                        "delta": {"type": "text_delta", "text": text[j : j + 7]},
                    },
                )
        else:
            head = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            yield (
                "content_block_start",
                {"type": "content_block_start", "index": i, "content_block": head},
            )
            raw = json.dumps(block["input"])
            for j in range(0, len(raw), 11):
                yield (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": i,
                        "delta": {"type": "input_json_delta", "partial_json": raw[j : j + 11]},
                    },
                )
        yield "content_block_stop", {"type": "content_block_stop", "index": i}
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
            "usage": {"output_tokens": usage["output_tokens"]},
        },
    )
    yield "message_stop", {"type": "message_stop"}
