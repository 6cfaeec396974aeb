"""The HTTP API over real sockets: formats, errors, tenancy, table metadata, the query log."""

from __future__ import annotations

import dataclasses
import http.client
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from pyiceberg.catalog import Catalog

from emberlake.errors import (
    InvalidSQL,
    NotFound,
    QuerydUnavailable,
    QueryRejected,
    QueryTimeout,
    TenantError,
    Unauthenticated,
)
from emberlake.settings import ReceiverSettings, Settings
from queryd.client import QueryClient
from queryd.querylog import JsonLinesQueryLog
from queryd.results import read_arrow_stream
from queryd.server import QuerydThread
from tests.conftest import free_port
from tests.queryd.lakedata import append, create_tables, metric_rows, span_rows

pytestmark = pytest.mark.integration

#: A cross join of 9e10 rows: minutes of work, so only the timeout ends it.
RUNAWAY = "SELECT sum(a.range * b.range) FROM range(300000) a, range(300000) b"


@pytest.fixture
def daemon(qsettings: Settings, catalog: Catalog) -> Iterator[QuerydThread]:
    tables = create_tables(catalog, "acme")
    append(tables["spans"], span_rows(40))
    append(tables["metrics"], metric_rows([1.0, float("nan")], [[1, 2], None]))
    other = create_tables(catalog, "other")
    append(other["spans"], span_rows(3, "secret-service"))
    with QuerydThread(qsettings) as server:
        yield server


def post(
    url: str, body: Any, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url + "/v1/query", data, headers or {}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, dict(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers.items()), exc.read()


def test_json_result_shape_and_values(daemon: QuerydThread) -> None:
    client = QueryClient(daemon.url, tenant="acme")
    result = client.query(
        "SELECT status_code, count(*) AS n, min(start_time) AS first, any_value(attributes) AS a "
        "FROM spans WHERE attributes['http.route'] = '/r0' GROUP BY 1 ORDER BY 1"
    )
    assert result["columns"] == [
        {"name": "status_code", "type": "VARCHAR"},
        {"name": "n", "type": "BIGINT"},
        {"name": "first", "type": "TIMESTAMP WITH TIME ZONE"},
        {"name": "a", "type": "MAP(VARCHAR, VARCHAR)"},
    ]
    assert [row[:3] for row in result["rows"]] == [
        ["ERROR", 2, "2026-11-01T12:00:00.000000+00:00"],
        ["OK", 12, "2026-11-01T12:00:03.000000+00:00"],
    ]
    assert result["rows"][0][3]["http.route"] == "/r0"
    assert result["row_count"] == 2 and result["truncated"] is False
    assert result["elapsed_ms"] > 0
    nan = client.query("SELECT value, bucket_counts FROM metrics ORDER BY time")
    assert nan["rows"] == [[1.0, [1, 2]], [None, None]]


def test_arrow_and_csv_by_accept_header(daemon: QuerydThread) -> None:
    client = QueryClient(daemon.url, tenant="acme")
    sql = "SELECT span_id, duration_ms FROM spans ORDER BY span_id LIMIT 3"
    body, headers = client.query_raw(sql, "application/vnd.apache.arrow.stream")
    assert headers["content-type"] == "application/vnd.apache.arrow.stream"
    assert headers["x-emberlake-row-count"] == "3"
    table = read_arrow_stream(body)
    assert table.column_names == ["span_id", "duration_ms"]
    assert table.column("duration_ms").to_pylist() == [0.0, 1.0, 2.0]
    text, headers = client.query_raw(sql, "text/csv")
    assert headers["content-type"].startswith("text/csv")
    assert text.decode().splitlines() == [
        "span_id,duration_ms",
        "0000000000000000,0.0",
        "0000000000000001,1.0",
        "0000000000000002,2.0",
    ]


def test_errors_have_codes_and_statuses(daemon: QuerydThread) -> None:
    h = {"x-emberlake-tenant": "acme", "Content-Type": "application/json"}
    cases = [
        ({"sql": "SELECT * FROM read_csv('/etc/passwd')"}, 400, "rejected"),
        ({"sql": "DROP TABLE spans"}, 400, "rejected"),
        ({"sql": "SELECT nope FROM spans"}, 400, "invalid_sql"),
        ({"sql": "SELEC 1"}, 400, "invalid_sql"),
        ({"sql": "SELECT * FROM traces"}, 404, "not_found"),
        ({"query": "SELECT 1"}, 400, "bad_request"),
        (b"{not json", 400, "bad_request"),
        ({"sql": "SELECT 1", "max_rows": -1}, 400, "bad_request"),
    ]
    for body, status, code in cases:
        got, _, raw = post(daemon.url, body, h)
        error = json.loads(raw)["error"]
        assert (got, error["code"]) == (status, code), (body, raw)
        assert error["message"]
    got, _, raw = post(daemon.url, {"sql": "SELECT 1"}, {"x-emberlake-tenant": "Not A Tenant"})
    assert got == 403 and json.loads(raw)["error"]["code"] == "forbidden"
    client = QueryClient(daemon.url, tenant="acme")
    with pytest.raises(QueryRejected, match="reads files"):
        client.query("SELECT * FROM read_parquet('x.parquet')")
    with pytest.raises(InvalidSQL, match="nope"):
        client.query("SELECT nope FROM spans")
    with pytest.raises(NotFound, match="traces"):
        client.query("SELECT * FROM traces")
    with pytest.raises(NotFound):
        client.table("traces")


def test_timeout_is_504_and_the_loop_stays_responsive(
    qsettings: Settings, catalog: Catalog
) -> None:
    create_tables(catalog, "acme")
    settings = dataclasses.replace(
        qsettings, queryd=dataclasses.replace(qsettings.queryd, timeout_seconds=1.5)
    )
    with QuerydThread(settings) as server:
        client = QueryClient(server.url, tenant="acme")
        outcome: dict[str, Any] = {}

        def runaway() -> None:
            started = time.monotonic()
            try:
                client.query(RUNAWAY)
            except QueryTimeout as exc:
                outcome["error"] = exc
            outcome["seconds"] = time.monotonic() - started

        worker = threading.Thread(target=runaway)
        worker.start()
        time.sleep(0.3)
        started = time.monotonic()
        assert client.health() is True
        assert client.query("SELECT 1 AS one")["rows"] == [[1]]
        assert time.monotonic() - started < 1.0
        worker.join(timeout=10)
        assert "longer than 1.5s" in str(outcome["error"])
        assert outcome["seconds"] < 4.0
        status, _, raw = post(
            server.url,
            {"sql": RUNAWAY},
            {"x-emberlake-tenant": "acme"},
        )
        assert status == 504 and json.loads(raw)["error"]["code"] == "timeout"


def test_a_query_whose_client_disconnects_is_cancelled(
    qsettings: Settings, catalog: Catalog
) -> None:
    create_tables(catalog, "acme")
    # One pool thread and a long timeout: the runaway would hold the daemon for a minute.
    queryd = dataclasses.replace(qsettings.queryd, timeout_seconds=60.0, concurrency=1)
    settings = dataclasses.replace(qsettings, queryd=queryd)
    with QuerydThread(settings) as server:
        host, port = server.url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
        body = json.dumps({"sql": RUNAWAY})
        conn.request("POST", "/v1/query", body, {"x-emberlake-tenant": "acme"})
        time.sleep(0.5)
        conn.close()  # the client gives up
        started = time.monotonic()
        client = QueryClient(server.url, tenant="acme", timeout=30)
        assert client.query("SELECT 1 AS one")["rows"] == [[1]]
        assert time.monotonic() - started < 10.0  # the only pool thread was given back
        querylog = JsonLinesQueryLog(settings.data_path / "querylog")
        first = next(querylog.entries("acme"))
        assert first.sql == RUNAWAY and not first.ok and first.error == "cancelled"
        assert first.elapsed_ms < 10_000


def test_row_limit_from_settings_and_request(daemon: QuerydThread) -> None:
    client = QueryClient(daemon.url, tenant="acme")
    limited = client.query("SELECT * FROM range(5000)")
    assert limited["row_count"] == 1000 and limited["truncated"] is True
    assert len(limited["rows"]) == 1000
    small = client.query("SELECT span_id FROM spans", max_rows=5)
    assert small["row_count"] == 5 and small["truncated"] is True


def test_tenants_are_isolated_by_header(daemon: QuerydThread) -> None:
    acme = QueryClient(daemon.url, tenant="acme").query("SELECT DISTINCT service_name FROM spans")
    other = QueryClient(daemon.url, tenant="other").query("SELECT DISTINCT service_name FROM spans")
    assert acme["rows"] == [["checkout"]]
    assert other["rows"] == [["secret-service"]]
    with pytest.raises(QueryRejected, match="another schema"):
        QueryClient(daemon.url, tenant="acme").query("SELECT * FROM other.spans")


def test_bearer_tokens_decide_the_tenant(qsettings: Settings, catalog: Catalog) -> None:
    append(create_tables(catalog, "acme")["spans"], span_rows(2))
    append(create_tables(catalog, "other")["spans"], span_rows(9))
    settings = dataclasses.replace(
        qsettings, receiver=ReceiverSettings(tokens="tok-a=acme,tok-o=other")
    )
    with QuerydThread(settings) as server:
        count = "SELECT count(*) FROM spans"
        assert QueryClient(server.url, token="tok-a").query(count)["rows"] == [[2]]
        assert QueryClient(server.url, token="tok-o").query(count)["rows"] == [[9]]
        with pytest.raises(Unauthenticated, match="missing bearer token"):
            QueryClient(server.url, tenant="acme").query(count)
        with pytest.raises(Unauthenticated, match="unknown bearer token"):
            QueryClient(server.url, token="wrong").query(count)
        with pytest.raises(TenantError, match="may not act for tenant 'other'"):
            QueryClient(server.url, tenant="other", token="tok-a").query(count)
        status, _, _ = post(server.url, {"sql": count})
        assert status == 401


def test_tables_metadata_and_health(daemon: QuerydThread) -> None:
    client = QueryClient(daemon.url, tenant="acme")
    tables = {t["name"]: t for t in client.tables()}
    assert set(tables) == {"logs", "metrics", "spans"}
    assert tables["spans"]["row_count"] == 40
    spans = client.table("spans")
    docs = {c["name"]: c["doc"] for c in spans["columns"]}
    assert docs["service_name"] == "resource attribute service.name"
    assert docs["name"] == "OTLP span name"
    assert spans["file_count"] == 1
    assert spans["partition_spec"][0]["transform"] == "day"
    with urllib.request.urlopen(daemon.url + "/healthz", timeout=10) as resp:
        assert json.loads(resp.read()) == {"status": "ok"}


def test_every_query_is_logged(daemon: QuerydThread, qsettings: Settings) -> None:
    client = QueryClient(daemon.url, tenant="acme")
    client.query(
        "SELECT service_name, count(*) FROM spans WHERE attributes['http.route'] = '/r1' "
        "AND start_time > TIMESTAMPTZ '2026-11-01 00:00:00+00' GROUP BY 1"
    )
    with pytest.raises(QueryRejected):
        client.query("SELECT * FROM read_csv('x.csv')")
    entries = list(JsonLinesQueryLog(qsettings.data_path / "querylog").entries("acme"))
    ok, rejected = entries
    assert ok.ok and ok.rows == 1 and ok.tables == ["spans"]
    assert ok.filter_columns == ["attributes['http.route']", "start_time"]
    assert ok.group_by_columns == ["service_name"]
    assert ok.elapsed_ms > 0
    assert not rejected.ok and rejected.error == "rejected"
    assert list(JsonLinesQueryLog(qsettings.data_path / "querylog").entries("other")) == []


def test_client_says_how_to_start_a_missing_daemon() -> None:
    client = QueryClient(f"http://127.0.0.1:{free_port()}", tenant="acme", timeout=5)
    with pytest.raises(QuerydUnavailable, match="emberlake up` or `emberlake queryd"):
        client.query("SELECT 1")
    assert client.health() is False


def test_concurrent_queries_from_several_tenants(daemon: QuerydThread) -> None:
    results: dict[int, Any] = {}

    def ask(i: int) -> None:
        tenant = "acme" if i % 2 else "other"
        try:
            results[i] = QueryClient(daemon.url, tenant=tenant).query(
                "SELECT count(*), min(service_name) FROM spans"
            )["rows"]
        except Exception as exc:  # collected and asserted below
            results[i] = exc

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert results == {
        i: [[40, "checkout"]] if i % 2 else [[3, "secret-service"]] for i in range(12)
    }
