"""Session store on S3-compatible object storage (AWS S3, MinIO, moto_server, ...).

Write-once entries are conditional PUTs with ``If-None-Match: *``: the server refuses the PUT
with 412 Precondition Failed when the key exists (409 ConditionalRequestConflict while another
conditional PUT of the same key is in flight, which is a loss too). S3 has done this since
August 2024; MinIO and moto_server (5.x) do as well.

A server that ignores the header would silently let two writers overwrite one slot. That cannot
be detected from one PUT, so :meth:`S3ObjectStore.check_conditional_writes` probes it once when the
store opens and refuses to run rather than risk forked sessions; there is no fallback that is
safe without the header.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from emberlake.errors import ConfigError, SessionError

from .store import KeyValueStore

_LOST = {"PreconditionFailed", "ConditionalRequestConflict", "412", "409"}
_ABSENT = {"NoSuchKey", "404", "NotFound"}
_OPTION_NAMES = {"endpoint_url", "region", "access_key_id", "secret_access_key", "session_token"}


class S3ObjectStore(KeyValueStore):
    """A bucket and key prefix, reached through boto3."""

    def __init__(self, client: Any, bucket: str, prefix: str = "", check: bool = True):
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        if check:
            self.check_conditional_writes()

    @classmethod
    def from_options(cls, bucket: str, prefix: str, options: Mapping[str, str]) -> S3ObjectStore:
        """Build a boto3 client from sessions options (endpoint_url, region, keys)."""
        unknown = set(options) - _OPTION_NAMES
        if unknown:
            raise ConfigError(
                f"unknown sessions option(s) {sorted(unknown)}; known: {sorted(_OPTION_NAMES)}"
            )
        import boto3
        from botocore.config import Config

        client = boto3.client(
            "s3",
            endpoint_url=options.get("endpoint_url") or None,
            region_name=options.get("region") or "us-east-1",
            aws_access_key_id=options.get("access_key_id") or None,
            aws_secret_access_key=options.get("secret_access_key") or None,
            aws_session_token=options.get("session_token") or None,
            config=Config(retries={"max_attempts": 3, "mode": "standard"}),
        )
        return cls(client, bucket, prefix)

    def describe(self) -> str:
        return f"session store s3://{self.bucket}/{self.prefix}"

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    @staticmethod
    def _code(exc: Exception) -> str:
        response = getattr(exc, "response", None) or {}
        code = str(response.get("Error", {}).get("Code", ""))
        status = str(response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
        return code if code else status

    def _fail(self, what: str, exc: Exception) -> SessionError:
        return SessionError(f"{what} in {self.describe()} failed: {exc}")

    def create_if_absent(self, key: str, data: bytes) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.put_object(
                Bucket=self.bucket, Key=self._key(key), Body=data, IfNoneMatch="*"
            )
        except ClientError as exc:
            if self._code(exc) in _LOST:
                return False
            raise self._fail(f"conditional write of {key}", exc) from None
        except BotoCoreError as exc:
            raise self._fail(f"conditional write of {key}", exc) from None
        return True

    def read(self, key: str) -> bytes | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
            body: bytes = response["Body"].read()
            return body
        except ClientError as exc:
            if self._code(exc) in _ABSENT:
                return None
            raise self._fail(f"read of {key}", exc) from None
        except BotoCoreError as exc:
            raise self._fail(f"read of {key}", exc) from None

    def write(self, key: str, data: bytes) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(f"write of {key}", exc) from None

    def delete(self, key: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if self._code(exc) not in _ABSENT:
                raise self._fail(f"delete of {key}", exc) from None
        except BotoCoreError as exc:
            raise self._fail(f"delete of {key}", exc) from None

    def list(self, prefix: str) -> Iterator[str]:
        from botocore.exceptions import BotoCoreError, ClientError

        strip = len(self._key(""))
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
                for item in page.get("Contents", []):
                    yield item["Key"][strip:]
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(f"listing of {prefix}", exc) from None

    def check_conditional_writes(self) -> None:
        """Refuse a server that ignores ``If-None-Match: *`` (it would let slots be overwritten)."""
        probe = f"probes/{uuid.uuid4().hex}"
        if not self.create_if_absent(probe, b"1"):
            raise SessionError(f"{self.describe()}: a fresh probe key already existed")
        won_twice = self.create_if_absent(probe, b"2")
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(probe))
        except Exception:  # noqa: BLE001 - leaving a probe behind is harmless
            pass
        if won_twice:
            raise SessionError(
                f"{self.describe()} ignores conditional writes (If-None-Match: *), so two agents"
                " could overwrite the same session step; use a store that supports them"
                " (S3 since 2024, MinIO, moto_server 5) or a local folder"
            )
