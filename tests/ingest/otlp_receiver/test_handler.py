"""The export handler with a recording sink, and how its errors are reported."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import grpc
import pytest
from google.rpc import error_details_pb2

from emberlake.errors import (
    BrokerUnavailable,
    EmberlakeError,
    InvalidRequest,
    RequestTooLarge,
    TenantError,
    Unauthenticated,
    UnsupportedMediaType,
)
from emberlake.settings import KafkaSettings, ReceiverSettings, Settings
from ingest.otlp_receiver.handler import OFFLOAD_BYTES, ExportHandler, KafkaRecord
from ingest.otlp_receiver.otlp_json import request_to_json
from ingest.otlp_receiver.signals import LOGS, TRACES
from ingest.otlp_receiver.status import RETRY_INFO_KEY, STATUS_DETAILS_KEY, failure_for
from tests.ingest.otlp_receiver.otlp_data import logs_request, spans_request


class RecordingSink:
    def __init__(self, fail: bool = False):
        self.fail = fail
        self.records: list[KafkaRecord] = []

    async def send_all(self, records: Sequence[KafkaRecord]) -> None:
        if self.fail:
            raise BrokerUnavailable("broker did not take the record: timed out")
        self.records.extend(records)


def _handler(sink: RecordingSink, tokens: str = "") -> ExportHandler:
    settings = Settings(
        kafka=KafkaSettings(topic_prefix="unit"), receiver=ReceiverSettings(tokens=tokens)
    )
    return ExportHandler(settings, sink, clock_us=lambda: 42)


def test_export_produces_one_record_per_service() -> None:
    sink = RecordingSink()
    handler = _handler(sink)
    raw = spans_request(["a", "b"], bad=[(0, 0)]).SerializeToString()
    decoded = asyncio.run(handler.export(TRACES, "acme", raw))
    assert decoded.rejected == 1
    assert [(t, k) for t, k, _, _ in sink.records] == [
        ("unit.otlp.spans", b"acme/a"),
        ("unit.otlp.spans", b"acme/b"),
    ]
    assert dict(sink.records[0][3])["emberlake-received-us"] == b"42"
    assert handler.stats.as_dict() == {
        "requests": {"traces": 1},
        "kafka_records": {"traces": 2},
        "rejected": {"traces": 1},
        "failed": {},
    }


def test_broker_failure_propagates_and_is_counted() -> None:
    handler = _handler(RecordingSink(fail=True))
    with pytest.raises(BrokerUnavailable):
        asyncio.run(handler.export(LOGS, "acme", logs_request().SerializeToString()))
    assert handler.stats.failed == {"logs": 1}


def test_invalid_body_never_reaches_the_sink() -> None:
    sink = RecordingSink()
    with pytest.raises(InvalidRequest):
        asyncio.run(_handler(sink).export(TRACES, "acme", b"\xff\xff"))
    assert sink.records == []


def test_tenant_from_header_or_default_when_auth_is_off() -> None:
    handler = _handler(RecordingSink())
    assert handler.tenant({}) == "default"
    assert handler.tenant({"x-emberlake-tenant": "acme"}) == "acme"
    with pytest.raises(TenantError, match="invalid tenant"):
        handler.tenant({"x-emberlake-tenant": "Not Valid"})


def test_tenant_from_bearer_token_when_auth_is_on() -> None:
    handler = _handler(RecordingSink(), tokens="s3cret=acme")
    assert handler.tenant({"authorization": "Bearer s3cret"}) == "acme"
    with pytest.raises(Unauthenticated):
        handler.tenant({})
    with pytest.raises(Unauthenticated):
        handler.tenant({"authorization": "Bearer wrong"})
    with pytest.raises(TenantError, match="may not act for tenant 'other'"):
        handler.tenant({"authorization": "Bearer s3cret", "x-emberlake-tenant": "other"})


@pytest.mark.parametrize(
    ("error", "code", "http_status"),
    [
        (RequestTooLarge("big"), grpc.StatusCode.RESOURCE_EXHAUSTED, 413),
        (UnsupportedMediaType("xml"), grpc.StatusCode.INVALID_ARGUMENT, 415),
        (InvalidRequest("bad"), grpc.StatusCode.INVALID_ARGUMENT, 400),
        (Unauthenticated("who"), grpc.StatusCode.UNAUTHENTICATED, 401),
        (TenantError("no"), grpc.StatusCode.PERMISSION_DENIED, 403),
        (BrokerUnavailable("down"), grpc.StatusCode.UNAVAILABLE, 503),
        (EmberlakeError("odd"), grpc.StatusCode.INTERNAL, 500),
    ],
)
def test_failure_table(error: EmberlakeError, code: grpc.StatusCode, http_status: int) -> None:
    failure = failure_for(error)
    assert (failure.grpc_code, failure.http_status, failure.message) == (
        code,
        http_status,
        str(error),
    )
    assert (failure.retry_after is not None) == (code == grpc.StatusCode.UNAVAILABLE)


def test_unavailable_carries_retry_info() -> None:
    failure = failure_for(BrokerUnavailable("down"))
    trailers = dict(failure.grpc_trailers())
    status = failure.rpc_status()
    assert status.code == grpc.StatusCode.UNAVAILABLE.value[0]
    assert trailers[STATUS_DETAILS_KEY] == status.SerializeToString()
    info = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(info)
    assert info.retry_delay.seconds == failure.retry_after
    assert error_details_pb2.RetryInfo.FromString(trailers[RETRY_INFO_KEY]) == info
    assert failure_for(InvalidRequest("x")).grpc_trailers() == ()


def test_large_bodies_are_decoded_off_the_loop_with_the_same_result() -> None:
    sink = RecordingSink()
    req = spans_request(["a", "b"], spans_per_resource=800)
    body = request_to_json(req)
    assert len(body) > OFFLOAD_BYTES["json"]
    decoded = asyncio.run(_handler(sink).export(TRACES, "acme", body, "json"))
    assert [b.service for b in decoded.batches] == ["a", "b"]
    assert sink.records[0][2] + sink.records[1][2] == req.SerializeToString()
