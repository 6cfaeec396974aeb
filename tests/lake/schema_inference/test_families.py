"""Unbounded key detection: id-like keys and single-wildcard templates."""

from __future__ import annotations

import uuid

import pytest

from lake.schema_inference.families import id_template, templates

SEMANTIC_KEYS = [
    "http.request.method",
    "http.response.status_code",
    "http.route",
    "url.full",
    "server.address",
    "server.port",
    "net.peer.ip",
    "db.system",
    "db.statement",
    "rpc.grpc.status_code",
    "messaging.kafka.message.key",
    "k8s.pod.name",
    "aws.s3.bucket",
    "service.name",
    "service.instance.id",
    "telemetry.sdk.language",
    "process.pid",
    "gen_ai.usage.input_tokens",
    "exception.stacktrace",
    "code.lineno",
    "thread.id",
    "oauth2.client",
]


@pytest.mark.parametrize("key", SEMANTIC_KEYS)
def test_semantic_convention_keys_are_bounded(key: str) -> None:
    assert id_template(key) is None


@pytest.mark.parametrize(
    ("key", "family"),
    [
        ("user.123.clicks", "user.*.clicks"),
        (f"user.{uuid.UUID(int=7)}", "user.*"),
        ("session_4f3a2b1c9d.start", "session_*.start"),
        ("cpu.0.usage", "cpu.*.usage"),
        ("report.20240101.rows", "report.*.rows"),
        ("token.Ab3dEf6hIj9kLm2nOp", "token.*"),
        ("cache.d41d8cd98f00b204e9800998ecf8427e", "cache.*"),
    ],
)
def test_id_like_keys(key: str, family: str) -> None:
    assert id_template(key) == family


def test_templates() -> None:
    assert templates("user.alice.clicks") == ["*.alice.clicks", "user.*.clicks", "user.alice.*"]
    assert templates("a/b:c") == ["*/b:c", "a/*:c", "a/b:*"]
    assert templates("single_segment") == []
