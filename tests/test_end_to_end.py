"""The whole system, as a user runs it: ``emberlake up``, real SDK exporters, SQL back."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from emberlake.local import LocalSystem as System
from tests.otel_senders import Endpoints, send_json_spans, send_logs, send_metrics, send_spans

pytestmark = pytest.mark.integration

TRANSPORTS = ("grpc", "grpc-gzip", "http-protobuf")


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory):
    sys_ = System(tmp_path_factory.mktemp("e2e") / "data", only=("writer", "queryd", "receiver"))
    sys_.start()
    yield sys_
    code = sys_.stop()
    assert code == 0, sys_.logs()


def test_every_record_arrives_exactly_once_with_attributes(system: System) -> None:
    run = uuid.uuid4().hex[:8]
    ep = Endpoints(system.grpc_port, system.http_port)
    span_uids: list[str] = []
    log_uids: list[str] = []
    metric_uids: list[str] = []
    for transport in TRANSPORTS:
        span_uids += send_spans(ep, transport, run, 40)
        log_uids += send_logs(ep, transport, run, 25)
        metric_uids.append(send_metrics(ep, transport, run))
    span_uids += send_json_spans(ep, run, 10)

    where = f"resource_attributes['test.run'] = '{run}'"
    system.wait_rows(
        f"SELECT count(*) FROM spans WHERE {where} AND name <> 'db.query'", len(span_uids)
    )
    rows = system.query(
        f"SELECT attributes['test.uid'], count(*) FROM spans WHERE {where} "
        "AND name <> 'db.query' GROUP BY 1"
    )["rows"]
    assert dict(rows) == dict.fromkeys(span_uids, 1)

    # Attribute values and structure survive: parents, status, typed values rendered as text.
    sample = system.query(
        f"SELECT attributes['http.status_code'], attributes['ratio'], service_name, kind "
        f"FROM spans WHERE attributes['test.uid'] = '{run}-grpc-span-1'"
    )["rows"]
    assert sample == [["201", str(1 / 7.0), "checkout", "INTERNAL"]]
    children = system.query(
        f"SELECT count(*) FROM spans c JOIN spans p ON c.parent_span_id = p.span_id "
        f"AND c.trace_id = p.trace_id WHERE c.name = 'db.query' AND c.{where}"
    )["rows"]
    assert children == [[120]]
    json_span = system.query(
        f"SELECT status_code, status_message, kind, attributes['retries'] FROM spans "
        f"WHERE attributes['test.uid'] = '{run}-http-json-span-3'"
    )["rows"]
    assert json_span == [["ERROR", "card declined", "SERVER", "2"]]

    system.wait_rows(f"SELECT count(*) FROM logs WHERE {where}", len(log_uids))
    rows = system.query(
        f"SELECT attributes['test.uid'], count(*), any_value(body) FROM logs "
        f"WHERE {where} GROUP BY 1"
    )["rows"]
    assert {uid: n for uid, n, _ in rows} == dict.fromkeys(log_uids, 1)
    errors = system.query(f"SELECT count(*) FROM logs WHERE {where} AND severity_text = 'ERROR'")[
        "rows"
    ]
    assert errors == [[5 * len(TRANSPORTS)]]

    metric_where = f"{where} AND attributes['test.uid'] LIKE '{run}-%'"
    system.wait_rows(f"SELECT count(*) FROM metrics WHERE {metric_where}", 3 * len(metric_uids))
    kinds = system.query(
        f"SELECT metric_name, metric_type, count(*), max(coalesce(value, sum)) FROM metrics "
        f"WHERE {metric_where} GROUP BY 1, 2 ORDER BY 1"
    )["rows"]
    assert kinds == [
        ["latency_ms", "histogram", 3, 12.5],
        ["orders", "sum", 3, 3.0],
        ["queue_depth", "gauge", 3, 42.0],
    ]


def test_tables_describe_their_columns(system: System) -> None:
    import json
    import urllib.request

    with urllib.request.urlopen(system.query_url + "/v1/tables/spans", timeout=30) as resp:
        table = json.loads(resp.read())
    columns = {c["name"]: c for c in table["columns"]}
    assert {"trace_id", "span_id", "start_time", "service_name", "attributes"} <= set(columns)
    assert "service.name" in json.dumps(columns["service_name"])


def test_restart_keeps_the_lake(tmp_path: Path) -> None:
    data = tmp_path / "data"
    run = uuid.uuid4().hex[:8]
    first = System(data, only=("writer", "queryd", "receiver"))
    first.start()
    try:
        uids = send_spans(Endpoints(first.grpc_port, first.http_port), "grpc", run, 30)
        first.wait_rows(
            f"SELECT count(*) FROM spans WHERE resource_attributes['test.run'] = '{run}' "
            "AND name <> 'db.query'",
            len(uids),
        )
    finally:
        assert first.stop() == 0, first.logs()
    second = System(data, only=("writer", "queryd", "receiver"))
    second.start()
    try:
        more = send_spans(Endpoints(second.grpc_port, second.http_port), "grpc", run + "b", 5)
        second.wait_rows(
            f"SELECT count(*) FROM spans WHERE resource_attributes['test.run'] = '{run}' "
            "AND name <> 'db.query'",
            len(uids),
        )
        second.wait_rows(
            f"SELECT count(*) FROM spans WHERE resource_attributes['test.run'] = '{run}b' "
            "AND name <> 'db.query'",
            len(more),
        )
    finally:
        assert second.stop() == 0, second.logs()
