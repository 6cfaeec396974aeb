"""Which records the receiver refuses, and how they are pruned from a resource entry."""

from __future__ import annotations

from ingest.otlp_receiver.signals import LOGS, METRICS, TRACES
from ingest.otlp_receiver.validation import entry_is_valid, prune_entry, span_problem
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
    assert not entry_is_valid(TRACES, entry)
    pruned, refused, problems = prune_entry(TRACES, entry)
    assert (refused, problems) == (0, [])
    assert pruned == entry


def test_prune_removes_only_bad_spans_and_leaves_the_original_alone() -> None:
    entry = spans_request(["a"], spans_per_resource=4, bad=[(0, 1), (0, 3)]).resource_spans[0]
    assert not entry_is_valid(TRACES, entry)
    pruned, refused, problems = prune_entry(TRACES, entry)
    assert refused == 2
    assert problems == ["span span_id must be 8 bytes, got 3 bytes"] * 2
    assert pruned is not None
    assert [s.name for s in pruned.scope_spans[0].spans] == ["span-0-0", "span-0-2"]
    assert len(entry.scope_spans[0].spans) == 4
    assert pruned.resource == entry.resource


def test_entry_with_only_bad_spans_is_dropped() -> None:
    entry = spans_request(["a"], spans_per_resource=2, bad=[(0, 0), (0, 1)]).resource_spans[0]
    pruned, refused, _ = prune_entry(TRACES, entry)
    assert (pruned, refused) == (None, 2)


def test_empty_scopes_sent_by_the_client_are_kept() -> None:
    req = spans_request(["a"], bad=[(0, 0)])
    req.resource_spans[0].scope_spans.add().scope.name = "empty"
    pruned, refused, _ = prune_entry(TRACES, req.resource_spans[0])
    assert refused == 1 and pruned is not None
    assert [s.scope.name for s in pruned.scope_spans] == ["tests", "empty"]


def test_logs_without_trace_context_are_valid() -> None:
    entry = logs_request(["a"], records_per_resource=4).resource_logs[0]
    assert not entry.scope_logs[0].log_records[0].trace_id
    assert entry_is_valid(LOGS, entry)


def test_bad_log_ids_are_pruned() -> None:
    entry = logs_request(["a"], records_per_resource=3, bad=[(0, 1)]).resource_logs[0]
    assert not entry_is_valid(LOGS, entry)
    pruned, refused, problems = prune_entry(LOGS, entry)
    assert refused == 1
    assert problems == ["log trace_id must be empty or 16 bytes, got 5 bytes"]
    assert pruned is not None
    bodies = [r.body.string_value for r in pruned.scope_logs[0].log_records]
    assert bodies == ["log-0-0", "log-0-2"]


def test_metric_points_with_good_exemplars_are_kept() -> None:
    entry = metrics_request(["a"]).resource_metrics[0]
    pruned, refused, _ = prune_entry(METRICS, entry)
    assert refused == 0 and pruned == entry


def test_metric_point_with_bad_exemplar_is_pruned() -> None:
    entry = metrics_request(["a"], bad_exemplar=True).resource_metrics[0]
    assert not entry_is_valid(METRICS, entry)
    pruned, refused, problems = prune_entry(METRICS, entry)
    assert refused == 1
    assert problems == ["exemplar span_id must be empty or 8 bytes, got 4 bytes"]
    assert pruned is not None
    gauge = pruned.scope_metrics[0].metrics[0]
    assert [p.as_double for p in gauge.gauge.data_points] == [2.0]
    assert [m.name for m in pruned.scope_metrics[0].metrics] == [
        "queue.depth.0",
        "latency.0",
        "summary.0",
    ]


def test_metric_left_without_points_is_dropped() -> None:
    req = metrics_request(["a"], bad_exemplar=True)
    del req.resource_metrics[0].scope_metrics[0].metrics[0].gauge.data_points[1]
    pruned, refused, _ = prune_entry(METRICS, req.resource_metrics[0])
    assert refused == 1 and pruned is not None
    assert [m.name for m in pruned.scope_metrics[0].metrics] == ["latency.0", "summary.0"]
