"""The S3 session store against a real S3-compatible server (moto_server) on 127.0.0.1."""

from __future__ import annotations

import uuid
from typing import Any

import boto3
import pytest

from agents.sessions import open_store
from agents.sessions.s3_store import S3ObjectStore
from emberlake.errors import SessionError

from . import sessions_contract as contract

pytestmark = pytest.mark.integration


@pytest.fixture
def s3_endpoint(s3_server: Any) -> str:
    """The session-wide S3-compatible server (moto_server) of tests/conftest.py."""
    return str(s3_server.endpoint)


OPTIONS = {"region": "us-east-1", "access_key_id": "test", "secret_access_key": "test"}


@pytest.fixture
def bucket(s3_endpoint: str) -> str:
    name = f"sessions-{uuid.uuid4().hex[:12]}"
    client(s3_endpoint).create_bucket(Bucket=name)
    return name


def client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def store(endpoint: str, bucket: str, prefix: str = "agents") -> S3ObjectStore:
    made = open_store(f"s3://{bucket}/{prefix}", {**OPTIONS, "endpoint_url": endpoint})
    assert isinstance(made, S3ObjectStore)
    return made


def test_blobs(s3_endpoint: str, bucket: str) -> None:
    contract.check_blobs(store(s3_endpoint, bucket))


def test_create_if_absent_is_a_conditional_put(s3_endpoint: str, bucket: str) -> None:
    s = store(s3_endpoint, bucket)
    contract.check_create_if_absent(s)
    # The prefix is honoured: keys live under it in the bucket.
    keys = [o["Key"] for o in client(s3_endpoint).list_objects_v2(Bucket=bucket)["Contents"]]
    assert "agents/slots/a" in keys


def test_thread_race_has_one_winner_per_slot(s3_endpoint: str, bucket: str) -> None:
    contract.check_threads_race(lambda: store(s3_endpoint, bucket), writers=4, keys=15)


def test_leases(s3_endpoint: str, bucket: str) -> None:
    contract.check_leases(store(s3_endpoint, bucket))


def test_lease_race_has_one_holder_per_session(s3_endpoint: str, bucket: str) -> None:
    contract.check_lease_race(lambda: store(s3_endpoint, bucket), workers=4, sessions=5)


def test_sessions_forks_and_refs(s3_endpoint: str, bucket: str) -> None:
    contract.check_sessions_fork_refs(store(s3_endpoint, bucket))


class _IgnoresConditions:
    """A client of a server that drops If-None-Match (what some old S3 clones do)."""

    def __init__(self, inner: Any):
        self.inner = inner

    def put_object(self, **kwargs: Any) -> Any:
        kwargs.pop("IfNoneMatch", None)
        return self.inner.put_object(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_server_without_conditional_writes_is_refused(s3_endpoint: str, bucket: str) -> None:
    with pytest.raises(SessionError, match="ignores conditional writes"):
        S3ObjectStore(_IgnoresConditions(client(s3_endpoint)), bucket, "p")


def test_unknown_options_and_missing_bucket_are_config_errors() -> None:
    from emberlake.errors import ConfigError

    with pytest.raises(ConfigError):
        open_store("s3://b/p", {"endpoint": "x"})
    with pytest.raises(ConfigError):
        open_store("s3:///p", {})
    with pytest.raises(ConfigError):
        open_store("gs://b/p", {})
