"""OTLP/JSON decoding: hex ids, field name styles, ints as strings, unknown fields."""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.protobuf import json_format
from google.protobuf.message import Message

from emberlake.errors import InvalidRequest
from ingest.otlp_receiver.otlp_json import parse_json, request_to_json, to_json
from ingest.otlp_receiver.signals import LOGS, METRICS, TRACES, OtlpSignal
from tests.ingest.otlp_receiver.otlp_data import logs_request, metrics_request, spans_request

TRACE_HEX = "5b8efff798038103d269b633813fc60c"
SPAN_HEX = "eee19b7ec3c1b174"
PARENT_HEX = "eee19b7ec3c1b173"


def _spans_doc(**span: object) -> bytes:
    base = {
        "traceId": TRACE_HEX,
        "spanId": SPAN_HEX,
        "parentSpanId": PARENT_HEX,
        "name": "GET /cart",
        "kind": 2,
        "startTimeUnixNano": "1544712660000000000",
        "endTimeUnixNano": 1544712661000000000,
        "attributes": [{"key": "http.status_code", "value": {"intValue": "200"}}],
        "status": {"code": 2, "message": "boom"},
    }
    base.update(span)
    doc = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "cart"}}]
                },
                "scopeSpans": [{"scope": {"name": "lib"}, "spans": [base]}],
            }
        ]
    }
    return json.dumps(doc).encode()


def test_span_ids_are_hex_and_ints_may_be_strings() -> None:
    req = parse_json(TRACES, _spans_doc())
    span = req.resource_spans[0].scope_spans[0].spans[0]  # type: ignore[attr-defined]
    assert span.trace_id.hex() == TRACE_HEX
    assert span.span_id.hex() == SPAN_HEX
    assert span.parent_span_id.hex() == PARENT_HEX
    assert span.start_time_unix_nano == 1544712660000000000
    assert span.end_time_unix_nano == 1544712661000000000
    assert span.kind == 2 and span.status.code == 2
    assert span.attributes[0].value.int_value == 200


def test_links_ids_are_hex_too() -> None:
    req = parse_json(TRACES, _spans_doc(links=[{"traceId": TRACE_HEX, "spanId": PARENT_HEX}]))
    link = req.resource_spans[0].scope_spans[0].spans[0].links[0]  # type: ignore[attr-defined]
    assert (link.trace_id.hex(), link.span_id.hex()) == (TRACE_HEX, PARENT_HEX)


def test_unknown_fields_are_ignored() -> None:
    req = parse_json(TRACES, _spans_doc(futureField={"x": 1}))
    assert req.resource_spans[0].scope_spans[0].spans[0].name == "GET /cart"  # type: ignore[attr-defined]


def test_original_field_names_are_accepted() -> None:
    doc = {
        "resource_logs": [
            {
                "scope_logs": [
                    {"log_records": [{"trace_id": TRACE_HEX, "span_id": SPAN_HEX, "body": {}}]}
                ]
            }
        ]
    }
    req = parse_json(LOGS, json.dumps(doc).encode())
    rec = req.resource_logs[0].scope_logs[0].log_records[0]  # type: ignore[attr-defined]
    assert (rec.trace_id.hex(), rec.span_id.hex()) == (TRACE_HEX, SPAN_HEX)


def test_exemplar_ids_are_hex() -> None:
    point = {"asDouble": 1.5, "exemplars": [{"traceId": TRACE_HEX, "spanId": SPAN_HEX}]}
    doc = {
        "resourceMetrics": [
            {"scopeMetrics": [{"metrics": [{"name": "m", "sum": {"dataPoints": [point]}}]}]}
        ]
    }
    req = parse_json(METRICS, json.dumps(doc).encode())
    metric = req.resource_metrics[0].scope_metrics[0].metrics[0]  # type: ignore[attr-defined]
    exemplar = metric.sum.data_points[0].exemplars[0]
    assert exemplar.trace_id.hex() == TRACE_HEX


def test_non_hex_id_becomes_an_invalid_id_not_a_failed_request() -> None:
    req = parse_json(TRACES, _spans_doc(spanId="not-hex!"))
    span = req.resource_spans[0].scope_spans[0].spans[0]  # type: ignore[attr-defined]
    assert len(span.span_id) == 1


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"resourceSpans": "nope"}', "not an OTLP/JSON"),
        (
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "soon"}]}]}]}',
            "OTLP",
        ),
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
    ],
)
def test_malformed_json_is_invalid(body: bytes, match: str) -> None:
    with pytest.raises(InvalidRequest, match=match):
        parse_json(TRACES, body)


@pytest.mark.parametrize(
    ("signal", "request_"),
    [
        (TRACES, spans_request(["a", None])),
        (LOGS, logs_request(["a"])),
        (METRICS, metrics_request()),
    ],
)
def test_request_to_json_roundtrips(signal: object, request_: object) -> None:
    encoded = request_to_json(request_)  # type: ignore[arg-type]
    assert parse_json(signal, encoded) == request_  # type: ignore[arg-type]


def test_request_to_json_writes_hex_ids() -> None:
    req = spans_request(["a"])
    doc = json.loads(request_to_json(req))
    span = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert span["traceId"] == req.resource_spans[0].scope_spans[0].spans[0].trace_id.hex()


def test_response_json_uses_camel_case() -> None:
    doc = json.loads(to_json(TRACES.response(2, "bad ids")))
    assert doc == {"partialSuccess": {"rejectedSpans": "2", "errorMessage": "bad ids"}}
    assert json.loads(to_json(TRACES.response(0, ""))) == {}


def _reference(signal: OtlpSignal, doc: dict[str, Any]) -> Message:
    """What protobuf's own JSON mapping makes of a document whose ids are already bytes-free."""
    message = signal.request_type()
    json_format.ParseDict(doc, message, ignore_unknown_fields=True)
    return message


def test_agrees_with_protobuf_json_mapping_on_every_value_kind() -> None:
    value = {
        "kvlistValue": {
            "values": [
                {"key": "s", "value": {"stringValue": "x"}},
                {"key": "b", "value": {"boolValue": True}},
                {"key": "i", "value": {"intValue": "-9007199254740993"}},
                {"key": "d", "value": {"doubleValue": "NaN"}},
                {"key": "inf", "value": {"doubleValue": "-Infinity"}},
                {"key": "raw", "value": {"bytesValue": "3q2-7w"}},
                {"key": "std", "value": {"bytesValue": "3q2+7w=="}},
                {"key": "a", "value": {"arrayValue": {"values": [{"intValue": 1}, {}]}}},
                {"key": "n", "value": None},
            ]
        }
    }
    doc = {
        "resourceLogs": [
            {
                "resource": {"attributes": [{"key": "k", "value": value}]},
                "schemaUrl": "https://opentelemetry.io/schemas/1.26.0",
                "scope_logs": [
                    {
                        "scope": {"name": "lib", "version": "1", "droppedAttributesCount": 2},
                        "logRecords": [
                            {
                                "timeUnixNano": "1700000000000000001",
                                "observed_time_unix_nano": 1700000000000000002,
                                "severityNumber": "SEVERITY_NUMBER_WARN",
                                "severityText": "WARN",
                                "body": {"stringValue": "hello"},
                                "flags": 1,
                                "eventName": "e",
                                "unknownField": [1, 2],
                            },
                            {"severityNumber": 17, "body": None},
                        ],
                    }
                ],
            }
        ]
    }
    mine = parse_json(LOGS, json.dumps(doc).encode())
    assert str(mine) == str(_reference(LOGS, doc))  # str(): NaN != NaN
    rec = mine.resource_logs[0].scope_logs[0].log_records[0]  # type: ignore[attr-defined]
    assert rec.severity_number == 13 and rec.time_unix_nano == 1700000000000000001
    raw = mine.resource_logs[0].resource.attributes[0].value.kvlist_value.values[5]  # type: ignore[attr-defined]
    assert raw.value.bytes_value == bytes.fromhex("deadbeef")


def test_agrees_with_protobuf_json_mapping_on_metrics() -> None:
    req = metrics_request(["a", None])
    doc = json_format.MessageToDict(req)  # base64 ids: compare without the hex rewrite
    for rm in doc["resourceMetrics"]:
        for sm in rm["scopeMetrics"]:
            for m in sm["metrics"]:
                for p in m.get("gauge", {}).get("dataPoints", []):
                    for e in p.get("exemplars", []):
                        e.pop("traceId"), e.pop("spanId")
    assert parse_json(METRICS, json.dumps(doc).encode()) == _reference(METRICS, doc)


@pytest.mark.parametrize(
    ("span", "match"),
    [
        ({"name": 5}, "OTLP/JSON"),
        ({"droppedAttributesCount": -1}, "OTLP/JSON"),
        ({"startTimeUnixNano": 2**64}, "OTLP/JSON"),
        ({"attributes": {"key": "x"}}, "must be a JSON array"),
        ({"status": "ERROR"}, "expected a JSON object"),
        ({"attributes": [{"key": "x", "value": {"bytesValue": "%%%"}}]}, "OTLP/JSON"),
    ],
)
def test_wrong_value_types_are_invalid(span: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidRequest, match=match):
        parse_json(TRACES, _spans_doc(**span))


def test_deep_nesting_is_refused() -> None:
    value: dict[str, Any] = {"stringValue": "leaf"}
    for _ in range(200):
        value = {"arrayValue": {"values": [value]}}
    body = _spans_doc(attributes=[{"key": "deep", "value": value}])
    with pytest.raises(InvalidRequest, match="nest deeper than"):
        parse_json(TRACES, body)


def test_attribute_shortcut_agrees_with_protobuf_json_mapping() -> None:
    # Scalar attribute values take a shortcut; odd ones must come out as the mapping says.
    attributes = [
        {"key": "s", "value": {"stringValue": "x"}},
        {"key": "snake", "value": {"string_value": "y"}},
        {"key": "i", "value": {"intValue": "-42"}},
        {"key": "i_num", "value": {"intValue": 7}},
        {"key": "d", "value": {"doubleValue": 2.5}},
        {"key": "d_int", "value": {"doubleValue": 3}},
        {"key": "d_str", "value": {"doubleValue": "Infinity"}},
        {"key": "b", "value": {"boolValue": False}},
        {"key": "empty", "value": {}},
        {"key": "only_key"},
        {"key": "extra", "value": {"stringValue": "z"}, "unknown": 1},
        {"value": {"stringValue": "no key"}, "key": "late_key"},
    ]
    doc = json.loads(_spans_doc(attributes=attributes))
    mine = parse_json(TRACES, json.dumps(doc).encode())
    span = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    for field in ("traceId", "spanId", "parentSpanId"):
        span.pop(field)
    got = mine.resource_spans[0].scope_spans[0].spans[0]  # type: ignore[attr-defined]
    for field in ("trace_id", "span_id", "parent_span_id"):
        got.ClearField(field)
    assert mine == _reference(TRACES, doc)
    assert [kv.key for kv in got.attributes] == [a["key"] for a in attributes]


@pytest.mark.parametrize("value", [{"intValue": "12x"}, {"intValue": "99999999999999999999"}])
def test_bad_int_attribute_is_invalid(value: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest, match="OTLP/JSON"):
        parse_json(TRACES, _spans_doc(attributes=[{"key": "k", "value": value}]))
