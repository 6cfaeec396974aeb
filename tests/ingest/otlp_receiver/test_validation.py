"""Which records the receiver refuses, and how they are pruned from a resource entry."""

from __future__ import annotations

from ingest.otlp_receiver.signals import LOGS, METRICS, TRACES
from ingest.otlp_receiver.validation import (
    _prune_scopes,
    _spans_look_valid,
    entry_is_valid,
    prune_entry,
    span_problem,
)
from tests.ingest.otlp_receiver.otlp_data import (
    logs_request,
    metrics_request,
    span_id,
    spans_request,
    trace_id,
)


def test_valid_spans_pass_the_quick_test() -> None:
    entry = spans_request(["a"], spans_per_resource=5).resource_spans[0]
    assert entry_is_valid(TRACES, entry)


def test_span_problems_name_the_field() -> None:
    span = spans_request(["a"]).resource_spans[0].scope_spans[0].spans[0]
    assert span_problem(span) is None
    span.trace_id = b""
    assert span_problem(span) == "span trace_id must be 16 bytes, got 0 bytes"
    span.trace_id = trace_id()
    span.parent_span_id = b"123"
    assert span_problem(span) == "span parent_span_id must be empty or 8 bytes, got 3 bytes"
    span.parent_span_id = span_id()
    link = span.links.add()
    link.trace_id = trace_id()
    link.span_id = b""
    assert span_problem(span) == "link span_id must be 8 bytes, got 0 bytes"


def test_spans_with_good_links_take_the_thorough_pass_and_lose_nothing() -> None:
    entry = spans_request(["a"]).resource_spans[0]
    link = entry.scope_spans[0].spans[0].links.add()
    link.trace_id, link.span_id = trace_id(), span_id()
    before = entry.SerializeToString()
    assert not entry_is_valid(TRACES, entry)
    assert prune_entry(TRACES, entry) == (0, [], False)
    assert entry.SerializeToString() == before


def test_prune_removes_only_bad_spans() -> None:
    entry = spans_request(["a"], spans_per_resource=4, bad=[(0, 1), (0, 3)]).resource_spans[0]
    resource = entry.resource.SerializeToString()
    assert not entry_is_valid(TRACES, entry)
    refused, problems, emptied = prune_entry(TRACES, entry)
    assert (refused, emptied) == (2, False)
    assert problems == ["span span_id must be 8 bytes, got 3 bytes"] * 2
    assert [s.name for s in entry.scope_spans[0].spans] == ["span-0-0", "span-0-2"]
    assert entry.resource.SerializeToString() == resource


def test_only_scopes_failing_the_quick_test_are_examined() -> None:
    entry = spans_request(["a"], spans_per_resource=2, bad=[(0, 0)]).resource_spans[0]
    good = entry.scope_spans.add()
    good.spans.add(trace_id=trace_id(), span_id=span_id(), name="fine")
    good.spans.add(trace_id=trace_id(), span_id=span_id(), name="not examined")
    examined: list[str] = []

    def spy(span: object) -> str | None:
        examined.append(span.name)  # type: ignore[attr-defined]
        return span_problem(span)

    problems: list[str] = []
    refused = _prune_scopes(entry.scope_spans, lambda s: s.spans, _spans_look_valid, spy, problems)
    assert refused == 1 and len(problems) == 1
    assert sorted(examined) == ["span-0-0", "span-0-1"]


def test_entry_with_only_bad_spans_is_dropped() -> None:
    entry = spans_request(["a"], spans_per_resource=2, bad=[(0, 0), (0, 1)]).resource_spans[0]
    refused, _, emptied = prune_entry(TRACES, entry)
    assert (refused, emptied) == (2, True)


def test_empty_scopes_sent_by_the_client_are_kept() -> None:
    req = spans_request(["a"], bad=[(0, 0)])
    req.resource_spans[0].scope_spans.add().scope.name = "empty"
    entry = req.resource_spans[0]
    assert prune_entry(TRACES, entry)[::2] == (1, False)
    assert [s.scope.name for s in entry.scope_spans] == ["tests", "empty"]


def test_logs_without_trace_context_are_valid() -> None:
    entry = logs_request(["a"], records_per_resource=4).resource_logs[0]
    assert not entry.scope_logs[0].log_records[0].trace_id
    assert entry_is_valid(LOGS, entry)


def test_bad_log_ids_are_pruned() -> None:
    entry = logs_request(["a"], records_per_resource=3, bad=[(0, 1)]).resource_logs[0]
    assert not entry_is_valid(LOGS, entry)
    refused, problems, _ = prune_entry(LOGS, entry)
    assert refused == 1
    assert problems == ["log trace_id must be empty or 16 bytes, got 5 bytes"]
    bodies = [r.body.string_value for r in entry.scope_logs[0].log_records]
    assert bodies == ["log-0-0", "log-0-2"]


def test_metric_points_with_good_exemplars_are_kept() -> None:
    entry = metrics_request(["a"]).resource_metrics[0]
    before = entry.SerializeToString()
    assert prune_entry(METRICS, entry) == (0, [], False)
    assert entry.SerializeToString() == before


def test_metric_point_with_bad_exemplar_is_pruned() -> None:
    entry = metrics_request(["a"], bad_exemplar=True).resource_metrics[0]
    assert not entry_is_valid(METRICS, entry)
    refused, problems, _ = prune_entry(METRICS, entry)
    assert refused == 1
    assert problems == ["exemplar span_id must be empty or 8 bytes, got 4 bytes"]
    gauge = entry.scope_metrics[0].metrics[0]
    assert [p.as_double for p in gauge.gauge.data_points] == [2.0]
    assert [m.name for m in entry.scope_metrics[0].metrics] == [
        "queue.depth.0",
        "latency.0",
        "summary.0",
    ]


def test_metric_left_without_points_is_dropped() -> None:
    req = metrics_request(["a"], bad_exemplar=True)
    del req.resource_metrics[0].scope_metrics[0].metrics[0].gauge.data_points[1]
    entry = req.resource_metrics[0]
    assert prune_entry(METRICS, entry).refused == 1
    assert [m.name for m in entry.scope_metrics[0].metrics] == ["latency.0", "summary.0"]
