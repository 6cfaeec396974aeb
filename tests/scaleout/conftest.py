"""A shared lake as a scaled-out deployment has it: a PostgreSQL catalog over an S3 warehouse."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from emberlake.settings import Settings


@pytest.fixture
def shared_lake(settings: Settings, postgres_server: Any, s3_server: Any) -> Settings:
    """The test's settings with its own catalog database and its own bucket."""
    name = f"lake_{uuid.uuid4().hex[:10]}"
    engine = create_engine(postgres_server.uri("postgres"), isolation_level="AUTOCOMMIT")
    with engine.connect() as con:
        con.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    bucket = name.replace("_", "-")
    s3_server.client().create_bucket(Bucket=bucket)
    return settings.replace(
        lake=dataclasses.replace(
            settings.lake,
            catalog_uri=postgres_server.uri(name),
            warehouse=f"s3://{bucket}/warehouse",
            catalog_properties=s3_server.catalog_properties(),
            batch_max_seconds=0.3,
        ),
        kafka=dataclasses.replace(settings.kafka, session_timeout_ms=3000),
    )
