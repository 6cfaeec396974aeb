"""Real services the scale-out tests need, started on 127.0.0.1 for one test session."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from emberlake.broker import wait_for_port


@dataclass(frozen=True)
class Postgres:
    port: int

    def uri(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{database}"


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


@contextmanager
def postgres(workdir: Path, port: int) -> Iterator[Postgres]:
    """initdb + postgres in ``workdir``, trust auth on 127.0.0.1 only, removed afterwards."""
    bin_dir = _pg_bin()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL is not installed: apt-get install postgresql")
    as_user: list[str] = []
    scratch: Path | None = None
    if os.geteuid() == 0:
        # The server refuses to run as root: hand it a folder of its own. Not under ``workdir``:
        # pytest's temporary root is private to root, so the postgres user could not reach it.
        scratch = workdir = Path(tempfile.mkdtemp(prefix="emberlake-pg-"))
        shutil.chown(workdir, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data = workdir / "pgdata"
    data.mkdir(parents=True)
    if as_user:
        shutil.chown(data, "postgres")
    subprocess.run(
        [*as_user, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
        check=True,
        capture_output=True,
    )
    proc = subprocess.Popen(
        [
            *as_user,
            str(bin_dir / "postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"unix_socket_directories={workdir}",
            "-c",
            "fsync=off",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port("127.0.0.1", port, 30)
        time.sleep(0.3)
        yield Postgres(port)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_key: str = "testing"
    secret_key: str = "testing"
    region: str = "us-east-1"

    def catalog_properties(self) -> str:
        return (
            f"s3.endpoint={self.endpoint},s3.access-key-id={self.access_key},"
            f"s3.secret-access-key={self.secret_key},s3.region={self.region},"
            "s3.path-style-access=true"
        )

    def client(self):  # type: ignore[no-untyped-def]
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
        )


@contextmanager
def moto_s3(port: int) -> Iterator[S3Server]:
    """An S3-compatible server (moto) on 127.0.0.1."""
    exe = Path(sys.executable).with_name("moto_server")
    proc = subprocess.Popen(
        [str(exe), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port("127.0.0.1", port, 30)
        yield S3Server(f"http://127.0.0.1:{port}")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
