"""The engine: event-time windows, watermark and idle closing, late records, OTLP decoding."""

from __future__ import annotations

import dataclasses

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from agents.detection import DetectionEngine, DetectorConfig, decode_logs, decode_spans
from agents.detection.telemetry import SpanFact, severity_of

CFG = DetectorConfig(
    window_seconds=1, warmup_windows=3, min_requests=5, lateness_seconds=0.5, idle_seconds=5
)
SEC = 1_000_000


def kv(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def test_decode_spans_counts_requests_errors_and_exception_events() -> None:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(kv("service.name", "cart"))
    ss = rs.scope_spans.add()
    root = ss.spans.add(
        trace_id=b"\x01" * 16,
        span_id=b"\x02" * 8,
        kind=Span.SPAN_KIND_INTERNAL,
        start_time_unix_nano=1_000_000_000,
        end_time_unix_nano=1_250_000_000,
    )
    root.status.code = Status.STATUS_CODE_ERROR
    ev = root.events.add(name="exception")
    ev.attributes.extend([kv("exception.type", "IOError"), kv("exception.message", "disk 3 full")])
    ss.spans.add(
        trace_id=b"\x01" * 16,
        span_id=b"\x03" * 8,
        parent_span_id=b"\x02" * 8,
        kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=1,
        end_time_unix_nano=2,
    )
    ss.spans.add(
        trace_id=b"\x01" * 16,
        span_id=b"\x04" * 8,
        parent_span_id=b"\x02" * 8,
        kind=Span.SPAN_KIND_SERVER,
        start_time_unix_nano=1,
        end_time_unix_nano=2,
    )
    facts = list(decode_spans(req.SerializeToString()))
    assert [(f.service, f.is_request, f.is_error) for f in facts] == [
        ("cart", True, True),
        ("cart", False, False),
        ("cart", True, False),
    ]
    assert facts[0].duration_ms == 250.0 and facts[0].time_us == 1_250_000
    assert facts[0].trace_id == "01" * 16
    assert facts[0].signatures[0].template == "disk <num> full"


def test_decode_logs_severity_and_signature() -> None:
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    rl.resource.attributes.append(kv("service.name", "cart"))
    rec = rl.scope_logs.add().log_records.add(
        time_unix_nano=5_000_000_000, severity_number=17, body=AnyValue(string_value="boom")
    )
    rec.attributes.extend([kv("exception.type", "KeyError"), kv("exception.message", "'x'")])
    rl.scope_logs[0].log_records.add(observed_time_unix_nano=6_000_000_000, severity_text="warning")
    facts = list(decode_logs(req.SerializeToString()))
    assert [(f.severity, f.time_us) for f in facts] == [("ERROR", 5 * SEC), ("WARN", 6 * SEC)]
    assert facts[0].signature is not None and facts[0].signature.template == "<str>"
    assert severity_of(0, "") == "UNSPECIFIED" and severity_of(24, "") == "FATAL"


def span(t_s: float, error: bool = False, ms: float = 10.0) -> SpanFact:
    return SpanFact("cart", int(t_s * SEC), ms, True, error, "ab" * 16)


def test_windows_close_on_watermark_and_late_records_are_dropped() -> None:
    engine = DetectionEngine(CFG)
    engine.observe_spans("default", [span(10.1), span(10.9)], wall_now=11.0)
    engine.close_ready(wall_now=11.0)
    changes = engine.take_changes()
    assert list(changes.windows) == [("spans", "default", "cart", 10 * SEC)]
    assert not changes.closed_windows
    engine.observe_spans("default", [span(11.6)], wall_now=12.0)  # 11.6 >= 11 + 0.5: closes 10
    engine.close_ready(wall_now=12.0)
    changes = engine.take_changes()
    assert changes.closed_windows == {("spans", "default", "cart", 10 * SEC)}
    assert engine.services[("spans", "default", "cart")].windows_closed == 1
    engine.observe_spans("default", [span(10.5)], wall_now=12.0)
    assert engine.late_records == 1


def test_idle_services_close_after_idle_seconds_and_gaps_count_as_empty() -> None:
    engine = DetectionEngine(CFG)
    engine.observe_spans("default", [span(1.5)], wall_now=2.0)
    engine.close_idle(wall_now=6.0)
    assert not engine.take_changes().closed_windows
    engine.close_idle(wall_now=7.5)
    assert engine.take_changes().closed_windows == {("spans", "default", "cart", 1 * SEC)}
    engine.observe_spans("default", [span(4.2), span(5.6)], wall_now=8.0)
    engine.close_ready(wall_now=8.0)
    state = engine.services[("spans", "default", "cart")]
    # Window 1 closed idle; windows 2 and 3 were silent, 4 closed by the watermark.
    assert state.windows_closed == 4 and state.closed_through_us == 4 * SEC


def test_incident_after_warm_up_produces_anomalies_once() -> None:
    engine = DetectionEngine(CFG)
    for second in range(10):
        engine.observe_spans("default", [span(second + k / 20) for k in range(20)], second + 1.0)
        engine.close_ready(second + 1.0)
    assert engine.take_changes().anomalies == []
    bad = [span(10 + k / 20, error=k % 2 == 0, ms=500.0) for k in range(20)]
    engine.observe_spans("default", bad, 11.0)
    engine.observe_spans("default", [span(11.6)], 12.0)
    engine.close_ready(12.0)
    kinds = sorted(a.kind for a in engine.take_changes().anomalies)
    assert kinds == ["error_rate", "latency"]


def _steady(engine: DetectionEngine, seconds: int) -> None:
    for second in range(seconds):
        engine.observe_spans("default", [span(second + k / 20) for k in range(20)], second + 1.0)
        engine.close_ready(second + 1.0)


def test_a_service_that_goes_silent_is_noticed_while_silent() -> None:
    engine = DetectionEngine(CFG)
    _steady(engine, 10)  # last record at data time ~9.95 s, wall time 10 s
    assert engine.take_changes().anomalies == []
    # Within the grace (idle 5 s + lateness 0.5 s) a silence may be delayed data: nothing scored.
    engine.close_idle(wall_now=15.0)
    state = engine.services[("spans", "default", "cart")]
    closed = state.closed_through_us
    assert engine.take_changes().anomalies == []
    assert state.closed_through_us == closed
    engine.close_idle(wall_now=19.0)
    anomalies = engine.take_changes().anomalies
    assert {a.kind for a in anomalies} == {"request_rate"}
    assert anomalies[0].observed == 0.0 and anomalies[0].expected > 10
    assert state.closed_through_us > closed
    # A silence is reported once: nothing more is scored while it lasts, and it teaches the
    # baseline nothing (it is not the service's normal traffic).
    mean = state.metrics["requests_per_second"].baseline.mean
    for wall in range(20, 400, 5):
        engine.close_idle(wall_now=float(wall))
    assert engine.take_changes().anomalies == []
    through = state.closed_through_us
    engine.close_idle(wall_now=500.0)
    assert not engine.take_changes() and state.closed_through_us == through
    assert state.metrics["requests_per_second"].baseline.mean == mean


def _traffic(engine: DetectionEngine, first: int, seconds: int, per_second: int = 20) -> None:
    for second in range(first, first + seconds):
        facts = [span(second + k / per_second) for k in range(per_second)]
        engine.observe_spans("default", facts, second + 1.0)
        engine.close_ready(second + 1.0)


def test_traffic_back_after_a_silence_is_judged_against_the_baseline_before_it() -> None:
    engine = DetectionEngine(CFG)
    _steady(engine, 10)
    engine.take_changes()
    for wall in range(10, 120, 5):  # silent from 10 s to 120 s: one drop
        engine.close_idle(wall_now=float(wall))
    drops = engine.take_changes().anomalies
    assert [a.kind for a in drops] == ["request_rate"] and drops[0].observed == 0.0
    # The usual volume again: no spike, although a hundred empty windows went by.
    _traffic(engine, 120, 10)
    assert engine.take_changes().anomalies == []
    state = engine.services[("spans", "default", "cart")]
    assert state.silent_since_us == -1
    # A real surge after a silence still fires.
    _traffic(engine, 130, 3, per_second=200)
    surge = engine.take_changes().anomalies
    assert surge and {(a.kind, a.observed) for a in surge} == {("request_rate", 200.0)}


def test_without_silence_alerts_a_gap_is_not_a_drop_and_teaches_nothing() -> None:
    engine = DetectionEngine(dataclasses.replace(CFG, silence_alerts=False))
    _steady(engine, 10)
    engine.take_changes()
    _traffic(engine, 200, 10)  # no records for 190 s, then the usual volume
    assert engine.take_changes().anomalies == []


def test_windows_that_passed_while_no_detector_ran_are_not_scored() -> None:
    first = DetectionEngine(CFG)
    _steady(first, 10)
    first.take_changes()
    # emberlake was stopped from 10 s to 300 s: clients could not send and nothing was seen.
    restarted = DetectionEngine(CFG)
    windows = list(first.windows.items())
    signatures = [
        (tenant, service, fp, seen)
        for (tenant, service), known in first.signatures.items()
        for fp, seen in known.items()
    ]
    restarted.load(first.services.values(), windows, signatures, wall_now=300.0)
    _traffic(restarted, 300, 10)
    assert restarted.take_changes().anomalies == []  # neither a drop for the gap nor a spike
    # A service still silent after the restart is reported, for a window it was seen silent in.
    again = DetectionEngine(CFG)
    again.load(first.services.values(), windows, signatures, wall_now=300.0)
    for wall in range(300, 330):
        again.close_idle(wall_now=float(wall))
    drops = again.take_changes().anomalies
    assert [a.kind for a in drops] == ["request_rate"]
    assert drops[0].window_start >= "1970-01-01T00:05:00"


def test_records_delayed_less_than_the_grace_are_still_counted() -> None:
    engine = DetectionEngine(CFG)
    _steady(engine, 10)
    engine.take_changes()
    engine.close_idle(wall_now=14.0)
    # A batch that waited 4 s in an exporter arrives with its original timestamps.
    engine.observe_spans("default", [span(10 + k / 20) for k in range(20)], 14.0)
    assert engine.late_records == 0


def test_silence_alerts_can_be_switched_off() -> None:
    engine = DetectionEngine(dataclasses.replace(CFG, silence_alerts=False))
    _steady(engine, 10)
    engine.take_changes()
    engine.close_idle(wall_now=60.0)
    assert engine.take_changes().anomalies == []


def _stop_early_in_a_window(engine: DetectionEngine) -> None:
    _steady(engine, 10)
    # The service stops 0.1 s into its 11th window: that window holds 2 requests, not 20.
    engine.observe_spans("default", [span(10.0), span(10.05)], 10.2)
    engine.take_changes()


def test_the_short_last_window_of_a_stopped_service_is_a_drop_with_silence_alerts() -> None:
    engine = DetectionEngine(CFG)
    _stop_early_in_a_window(engine)
    engine.close_idle(wall_now=16.0)
    drops = [a for a in engine.take_changes().anomalies if a.kind == "request_rate"]
    assert drops and drops[0].window_start.startswith("1970-01-01T00:00:10")
    assert drops[0].observed == 2.0


def test_without_silence_alerts_a_stop_reports_nothing_and_teaches_no_baseline() -> None:
    engine = DetectionEngine(dataclasses.replace(CFG, silence_alerts=False))
    _stop_early_in_a_window(engine)
    rate = engine.services[("spans", "default", "cart")].metrics["requests_per_second"]
    mean = rate.baseline.mean
    engine.close_idle(wall_now=16.0)
    assert engine.take_changes().anomalies == []
    state = engine.services[("spans", "default", "cart")]
    assert state.closed_through_us == 10 * SEC  # the short window was closed, not kept open
    assert rate.baseline.mean == mean  # and its low count did not pull the baseline down
    assert rate.history[-1][:2] == (10 * SEC, 2.0)  # still shown on the chart
