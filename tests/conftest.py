"""Shared fixtures: isolation from a developer's own configuration, and the real services.

Integration tests get a real Tansu broker process (one per session), a SQLite Iceberg catalog in
a temporary folder, and their own topic prefix, so tests never see each other's data.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from emberlake.broker import EmbeddedBroker
from emberlake.settings import (
    KafkaSettings,
    LakeSettings,
    QuerydSettings,
    ReceiverSettings,
    Settings,
)

for _key in list(os.environ):
    if _key.startswith(("EMBERLAKE_", "ANTHROPIC_", "OTEL_")):
        del os.environ[_key]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """One real Kafka-protocol broker process for the whole session."""
    b = EmbeddedBroker(free_port(), tmp_path_factory.mktemp("broker") / "broker.log")
    b.start()
    yield b
    b.stop()


@pytest.fixture
def settings(tmp_path: Path, broker: EmbeddedBroker) -> Settings:
    """Settings for one test: its own data folder, topic prefix, group and ports."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    return Settings(
        data_dir=str(tmp_path / "data"),
        kafka=KafkaSettings(
            bootstrap_servers=broker.bootstrap_servers, topic_prefix=prefix, partitions=4
        ),
        receiver=ReceiverSettings(grpc_port=free_port(), http_port=free_port()),
        lake=LakeSettings(batch_max_seconds=0.5, writer_group=f"{prefix}-writer"),
        queryd=QuerydSettings(port=free_port()),
    )


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory):
    """A real PostgreSQL server for shared-catalog tests."""
    from tests.services import postgres

    with postgres(tmp_path_factory.mktemp("pg"), free_port()) as pg:
        yield pg


@pytest.fixture(scope="session")
def s3_server():
    """A real S3-compatible server (moto) on 127.0.0.1."""
    from tests.services import moto_s3

    with moto_s3(free_port()) as s3:
        yield s3
