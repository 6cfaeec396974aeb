"""`emberlake queryd` and `emberlake query` as a user runs them: real processes, real HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyiceberg.catalog import Catalog

from emberlake.settings import Settings, to_env
from queryd.client import QueryClient
from tests.conftest import free_port
from tests.queryd.lakedata import append, create_tables, span_rows

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def env_of(settings: Settings) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("EMBERLAKE_")}
    return {**base, **to_env(settings), "PYTHONUNBUFFERED": "1"}


def emberlake(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "emberlake.cli", *args],
        env=env_of(settings),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def running(qsettings: Settings, catalog: Catalog, tmp_path: Path) -> Iterator[Settings]:
    tables = create_tables(catalog, "default")
    append(tables["spans"], span_rows(12, "checkout"))
    append(create_tables(catalog, "acme")["spans"], span_rows(3, "acme-svc"))
    log = (tmp_path / "queryd.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "emberlake.cli", "queryd"],
        env=env_of(qsettings),
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    client = QueryClient(f"http://127.0.0.1:{qsettings.queryd.port}")
    deadline = time.monotonic() + 30
    while not client.health():
        assert proc.poll() is None, (tmp_path / "queryd.log").read_text()
        assert time.monotonic() < deadline, "queryd did not come up"
        time.sleep(0.1)
    yield qsettings
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0, (tmp_path / "queryd.log").read_text()
    log.close()


def test_query_prints_a_table_csv_and_json(running: Settings) -> None:
    sql = "SELECT service_name, count(*) AS n FROM spans GROUP BY 1"
    table = emberlake(running, "query", sql)
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines() == [
        "service_name |  n",
        "-------------+---",
        "checkout     | 12",
        table.stdout.splitlines()[-1],
    ]
    assert table.stdout.splitlines()[-1].startswith("(1 row, ")
    csv = emberlake(running, "query", sql, "--format", "csv")
    assert csv.stdout == "service_name,n\ncheckout,12\n"
    as_json = emberlake(running, "query", sql, "--json", "--tenant", "acme")
    assert json.loads(as_json.stdout)["rows"] == [["acme-svc", 3]]


def test_query_errors_are_readable_and_exit_non_zero(running: Settings) -> None:
    refused = emberlake(running, "query", "SELECT * FROM read_csv('/etc/passwd')")
    assert refused.returncode == 1
    assert "emberlake: table function read_csv() reads files" in refused.stderr
    missing = emberlake(running, "query", "SELECT * FROM traces")
    assert missing.returncode == 1 and "unknown table 'traces'" in missing.stderr


def test_query_without_a_daemon_says_how_to_start_one(qsettings: Settings) -> None:
    settings = qsettings.replace(queryd=qsettings.queryd.__class__(port=free_port()))
    result = emberlake(settings, "query", "SELECT 1")
    assert result.returncode == 1
    assert "start it with `emberlake up` or `emberlake queryd`" in result.stderr
