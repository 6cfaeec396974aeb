"""Log record fields read as merged columns must land on the right rows, whichever records set
them; requests that are not canonically encoded are read record by record."""

from __future__ import annotations

import random
from typing import Any

import pyarrow as pa
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from lake.flatten import LogColumns, flatten_logs
from lake.flatten.common import UNKNOWN_SERVICE, render, render_body
from tests.lake.otlp_records import kv

T = 1_700_000_000_000_000_000


def _body(rng: random.Random, i: int) -> AnyValue | None:
    choice = rng.randrange(6)
    if choice == 0:
        return None
    if choice == 1:
        return AnyValue(string_value=f"message {i % 7}")
    if choice == 2:
        return AnyValue(int_value=i)
    if choice == 3:
        value = AnyValue()
        value.kvlist_value.values.extend([kv("k", i), kv("s", "x")])
        return value
    if choice == 4:
        return AnyValue(bytes_value=bytes([i % 256]))
    return AnyValue()  # set, but holding no value


def _varied_request(seed: int) -> ExportLogsServiceRequest:
    """Resources and scopes with and without records; every optional field set on some
    records only, so each merged column is full, empty or partial in some scope."""
    rng = random.Random(seed)
    request = ExportLogsServiceRequest()
    for r in range(rng.randrange(1, 4)):
        rl = request.resource_logs.add()
        if r:
            rl.resource.attributes.extend([kv("service.name", f"svc{r}"), kv("pid", r)])
        for s in range(rng.randrange(0, 3)):
            sl = rl.scope_logs.add()
            if s:
                sl.scope.name, sl.scope.version = f"scope{s}", "1.0"
            every = rng.randrange(1, 4)  # 1: the field on every record of the scope
            for i in range(rng.randrange(0, 9)):
                record = sl.log_records.add()
                if i % every == 0:
                    record.time_unix_nano = T + i
                if rng.random() < 0.7:
                    record.observed_time_unix_nano = rng.choice([T + 2 * i, 2**64 - 1])
                if i % every == 0 or rng.random() < 0.3:
                    record.severity_number = rng.choice([9, 17, 99, -3])
                if rng.random() < 0.5:
                    record.severity_text = rng.choice(["INFO", "ERROR", "Ünïcode"])
                body = _body(rng, i)
                if body is not None:
                    record.body.CopyFrom(body)
                if i % every == 0:
                    record.trace_id = rng.randbytes(16)
                if rng.random() < 0.5:
                    record.span_id = rng.randbytes(8)
                if rng.random() < 0.3:
                    record.flags = rng.choice([1, 2**32 - 1])
                if rng.random() < 0.3:
                    record.event_name = f"event{i}"
                record.attributes.extend(
                    [kv(f"a{j}", rng.choice([i, "v", True, 1.5])) for j in range(rng.randrange(3))]
                )
    return request


def _expected_rows(request: ExportLogsServiceRequest) -> list[dict[str, Any]]:
    """The rows read record by record through the official classes."""
    rows = []
    for rl in request.resource_logs:
        resource = [(a.key, render(a.value)) for a in rl.resource.attributes]
        service = dict(resource).get("service.name") or UNKNOWN_SERVICE
        for sl in rl.scope_logs:
            for record in sl.log_records:
                event = record.time_unix_nano or record.observed_time_unix_nano
                rows.append(
                    {
                        "time": event // 1000,
                        "observed_time": record.observed_time_unix_nano // 1000 or None,
                        "severity_number": record.severity_number,
                        "severity_text": record.severity_text or None,
                        "body": render_body(record.body) if record.HasField("body") else None,
                        "trace_id": record.trace_id.hex() or None,
                        "span_id": record.span_id.hex() or None,
                        "flags": record.flags,
                        "event_name": record.event_name or None,
                        "service_name": service,
                        "resource_attributes": resource,
                        "scope_name": sl.scope.name or None,
                        "scope_version": sl.scope.version or None,
                        "attributes": [(a.key, render(a.value)) for a in record.attributes],
                    }
                )
    return rows


def _rows(table: pa.Table) -> list[dict[str, Any]]:
    # Times as integer microseconds: the year-2554 instant of 2**64-1 ns stays comparable.
    table = table.set_column(0, "time", table.column("time").cast(pa.int64()))
    table = table.set_column(1, "observed_time", table.column("observed_time").cast(pa.int64()))
    return table.to_pylist()


def test_each_row_gets_its_own_records_values() -> None:
    for seed in range(60):
        request = _varied_request(seed)
        assert _rows(flatten_logs([request.SerializeToString()])) == _expected_rows(request), seed


def test_requests_accumulate_in_order() -> None:
    requests = [_varied_request(seed) for seed in range(10)]
    columns = LogColumns()
    for request in requests:
        columns.add(request.SerializeToString())
    expected = [row for request in requests for row in _expected_rows(request)]
    assert _rows(columns.to_arrow()) == expected


def test_a_field_given_twice_in_one_record_keeps_each_rows_value() -> None:
    # The first record names its severity twice and the third none: the merged column is as
    # long as the record count, but position no longer says whose value is whose.
    first = LogRecord(time_unix_nano=T, severity_text="one").SerializeToString()
    again = LogRecord(severity_text="again").SerializeToString()
    second = LogRecord(time_unix_nano=T + 1, severity_text="two").SerializeToString()
    third = LogRecord(time_unix_nano=T + 2).SerializeToString()
    raw = _request_with_raw_records([first + again, second, third])
    table = flatten_logs([raw])
    assert table.column("severity_text").to_pylist() == ["again", "two", None]
    expected = _expected_rows(ExportLogsServiceRequest.FromString(raw))
    assert _rows(table) == expected


def _request_with_raw_records(records: list[bytes]) -> bytes:
    """An ExportLogsServiceRequest holding the given log record bytes as they are."""

    def field(number: int, payload: bytes) -> bytes:
        return _varint(number << 3 | 2) + _varint(len(payload)) + payload

    scope_logs = b"".join(field(2, r) for r in records)  # ScopeLogs.log_records = 2
    resource_logs = field(2, scope_logs)  # ResourceLogs.scope_logs = 2
    return field(1, resource_logs)  # ExportLogsServiceRequest.resource_logs = 1


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)
