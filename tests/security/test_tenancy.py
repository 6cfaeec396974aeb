"""Tenancy and authentication end to end: bearer tokens on the receiver and the query daemon,
real data of two tenants, SQL escape attempts over HTTP, a runaway query cancelled on time.

The daemon's guard has unit tests of its own; here every refusal is checked through the real
HTTP API of a running daemon that has another tenant's data on disk to leak.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from emberlake.loadgen import AckedSpanSender
from emberlake.settings import Settings
from ingest.kafka import ensure_emberlake_topics
from ingest.otlp_receiver.signals import TRACES
from lake.catalog import open_catalog
from tests.faults.harness import Component, wait_until
from tests.ingest.harness import grpc_export, http_request
from tests.security import hostile

pytestmark = pytest.mark.integration

TOKENS = {"alpha": "tokA-7f3e", "beta": "tokB-91c2"}


@dataclasses.dataclass
class Lake:
    settings: Settings
    runs: dict[str, str]
    beta_file: str

    @property
    def query_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.queryd.port}"


def ask(
    lake: Lake,
    sql: str | None,
    token: str | None,
    headers: dict[str, str] | None = None,
    path: str = "/v1/query",
    timeout: float = 60,
) -> tuple[int, dict[str, Any]]:
    """One request to the daemon: (status, JSON body)."""
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    if token:
        all_headers["Authorization"] = f"Bearer {token}"
    data = None if sql is None else json.dumps({"sql": sql}).encode()
    req = urllib.request.Request(
        lake.query_url + path, data, all_headers, method="GET" if sql is None else "POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory, broker: Any) -> Iterator[Lake]:
    from emberlake.settings import KafkaSettings, LakeSettings, QuerydSettings, ReceiverSettings
    from tests.conftest import free_port

    tmp = tmp_path_factory.mktemp("tenancy")
    prefix = f"t{uuid.uuid4().hex[:10]}"
    settings = Settings(
        data_dir=str(tmp / "data"),
        kafka=KafkaSettings(bootstrap_servers=broker.bootstrap_servers, topic_prefix=prefix),
        receiver=ReceiverSettings(
            grpc_port=free_port(),
            http_port=free_port(),
            tokens=",".join(f"{token}={tenant}" for tenant, token in TOKENS.items()),
        ),
        lake=LakeSettings(batch_max_seconds=0.3, writer_group=f"{prefix}-writer"),
        queryd=QuerydSettings(port=free_port(), timeout_seconds=2.0),
    )
    ensure_emberlake_topics(settings)
    parts = [
        Component(settings, ["receiver"], tmp / "receiver.log"),
        Component(settings, ["writer", "--drain-seconds", "5"], tmp / "writer.log"),
        Component(settings, ["queryd"], tmp / "queryd.log"),
    ]
    for part in parts:
        part.start()
    parts[0].wait_port(settings.receiver.grpc_port)
    runs = {tenant: f"{tenant}-{uuid.uuid4().hex[:6]}" for tenant in TOKENS}
    try:
        for tenant, token in TOKENS.items():
            sender = AckedSpanSender(
                f"127.0.0.1:{settings.receiver.grpc_port}",
                runs[tenant],
                batch=25,
                services=2,
                headers={"authorization": f"Bearer {token}"},
            )
            sender.send_now(4)
            assert len(sender.log.acked()) == 100, f"{tenant}'s spans were not acknowledged"
        catalog = open_catalog(settings)
        wait_until(
            lambda: all(
                catalog.table_exists((tenant, "spans"))
                and catalog.load_table((tenant, "spans")).current_snapshot() is not None
                for tenant in TOKENS
            ),
            60,
            "both tenants' tables",
        )
        beta_file = next(iter(catalog.load_table(("beta", "spans")).scan().plan_files()))
        parts[2].wait_port(settings.queryd.port)
        yield Lake(settings, runs, beta_file.file.file_path.removeprefix("file://"))
    finally:
        for part in parts:
            part.stop()


def test_receiver_refuses_requests_without_valid_credentials(lake: Lake) -> None:
    settings = lake.settings
    body = hostile.span_request("nobody").SerializeToString()
    grpc_target = f"127.0.0.1:{settings.receiver.grpc_port}"
    url = f"http://127.0.0.1:{settings.receiver.http_port}/v1/traces"
    proto = {"Content-Type": "application/x-protobuf"}
    assert grpc_export(grpc_target, TRACES, body).code == grpc.StatusCode.UNAUTHENTICATED
    bad = (("authorization", "Bearer not-a-token"),)
    assert grpc_export(grpc_target, TRACES, body, bad).code == grpc.StatusCode.UNAUTHENTICATED
    # A valid token cannot be used to write as another tenant.
    other = (("authorization", f"Bearer {TOKENS['alpha']}"), ("x-emberlake-tenant", "beta"))
    assert grpc_export(grpc_target, TRACES, body, other).code == grpc.StatusCode.PERMISSION_DENIED
    assert http_request(url, body, proto).status == 401
    assert http_request(url, body, {**proto, "x-emberlake-tenant": "alpha"}).status == 401
    assert http_request(url, body, {**proto, "Authorization": "Basic dG9rQQ=="}).status == 401
    forged = {**proto, "Authorization": f"Bearer {TOKENS['alpha']}", "x-emberlake-tenant": "beta"}
    assert http_request(url, body, forged).status == 403
    # The header of the right tenant with its own token is fine (an empty export: no data).
    own = {**proto, "Authorization": f"Bearer {TOKENS['beta']}", "x-emberlake-tenant": "beta"}
    assert http_request(url, b"", own).status == 200


def test_query_daemon_refuses_requests_without_valid_credentials(lake: Lake) -> None:
    sql = "SELECT count(*) FROM spans"
    assert ask(lake, sql, None)[0] == 401
    assert ask(lake, sql, None, {"x-emberlake-tenant": "alpha"})[0] == 401
    assert ask(lake, sql, "wrong")[0] == 401
    assert ask(lake, sql, TOKENS["alpha"], {"x-emberlake-tenant": "beta"})[0] == 403
    assert ask(lake, None, None, path="/v1/tables")[0] == 401
    assert ask(lake, None, None, path="/v1/tables/spans")[0] == 401


def test_each_tenant_sees_only_its_own_data(lake: Lake) -> None:
    for tenant, token in TOKENS.items():
        other = next(t for t in TOKENS if t != tenant)
        status, body = ask(
            lake,
            "SELECT resource_attributes['test.run'] AS run, count(*) FROM spans GROUP BY 1",
            token,
        )
        assert status == 200, body
        assert body["rows"] == [[lake.runs[tenant], 100]], body
        status, tables = ask(lake, None, token, path="/v1/tables")
        assert status == 200 and tables["tenant"] == tenant
        status, described = ask(lake, None, token, path="/v1/tables/spans")
        assert status == 200 and lake.runs[other] not in json.dumps(described)
        # Even a table name that exists only for the other tenant is unknown here.
        status, body = ask(lake, f"SELECT * FROM {other}.spans", token)
        assert status in (400, 404) and lake.runs[other] not in json.dumps(body)


ESCAPES = [
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_parquet('{beta_file}')",
    "SELECT * FROM '{beta_file}'",
    "SELECT * FROM parquet_scan(['{beta_file}'])",
    "WITH x AS (SELECT * FROM read_parquet('{beta_file}')) SELECT count(*) FROM x",
    "SELECT (SELECT count(*) FROM read_parquet('{beta_file}'))",
    "SELECT * FROM spans, read_text('/etc/passwd')",
    "SELECT * FROM glob('/*')",
    "SELECT * FROM read_json_auto('http://127.0.0.1:9/x.json')",
    "SELECT * FROM 'http://127.0.0.1:9/x.parquet'",
    "SELECT * FROM sniff_csv('/etc/passwd')",
    "ATTACH '/tmp/emberlake-attack.db' AS attack",
    "INSTALL httpfs",
    "LOAD httpfs",
    "COPY spans TO '/tmp/emberlake-leak.csv'",
    "COPY (SELECT 1) TO '/tmp/emberlake-leak.csv'",
    "EXPORT DATABASE '/tmp/emberlake-export'",
    "PRAGMA database_list",
    "SET enable_external_access = true",
    "SET allowed_paths = ['/']",
    "RESET lock_configuration",
    "SELECT * FROM beta.spans",
    "SELECT * FROM alpha.spans",
    "SELECT * FROM system.main.spans",
    "SELECT * FROM information_schema.tables",
    "SELECT * FROM duckdb_settings()",
    "SELECT * FROM duckdb_tables()",
    "SELECT * FROM duckdb_views()",
    "SELECT current_setting('allowed_paths')",
    "SELECT getenv('HOME')",
    "SELECT * FROM query('SELECT * FROM read_csv(''/etc/passwd'')')",
    "SELECT 1; SELECT * FROM read_csv('/etc/passwd')",
    "SELECT count(*) FROM spans; DROP VIEW spans",
    "CREATE TABLE stolen AS SELECT 1",
    "DROP VIEW spans",
    "CALL pragma_version()",
]


@pytest.mark.parametrize("template", ESCAPES)
def test_sql_escapes_are_refused(lake: Lake, template: str) -> None:
    sql = template.format(beta_file=lake.beta_file)
    status, body = ask(lake, sql, TOKENS["alpha"])
    assert status in (400, 404), (status, body)
    assert body["error"]["code"] in {"rejected", "invalid_sql", "not_found"}, body
    assert lake.runs["beta"] not in json.dumps(body)
    assert not Path("/tmp/emberlake-leak.csv").exists()


def test_runaway_query_is_cancelled_and_the_daemon_stays_responsive(lake: Lake) -> None:
    runaway = "SELECT sum(a.range * b.range) FROM range(1000000) a, range(1000000) b"
    results: list[tuple[int, float]] = []

    def run() -> None:
        started = time.monotonic()
        status, _ = ask(lake, runaway, TOKENS["beta"])
        results.append((status, time.monotonic() - started))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    # While both run, the daemon answers health checks and small queries at once.
    started = time.monotonic()
    status, body = ask(lake, "SELECT count(*) FROM spans", TOKENS["alpha"])
    assert status == 200 and body["rows"] == [[100]]
    assert ask(lake, None, None, path="/healthz")[0] == 200
    assert time.monotonic() - started < 3
    for thread in threads:
        thread.join(timeout=30)
    assert [s for s, _ in results] == [504, 504], results
    assert all(seconds < 10 for _, seconds in results), results
    status, body = ask(lake, "SELECT count(*) FROM spans", TOKENS["beta"])
    assert status == 200 and body["rows"] == [[100]]
