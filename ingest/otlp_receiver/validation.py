"""Record validation: which records of a resource entry the receiver refuses, and pruning them.

A record with a malformed id is refused alone (OTLP partial success); the rest of the request is
kept. The check is the one per-record cost of the receiver, so it has two speeds: a quick test
per scope that only reads id lengths (:func:`entry_is_valid`), and a thorough pass that names
the problem and removes bad records (:func:`prune_entry`), run only on scopes that failed the
quick test.

Rules (OTLP trace/v1, logs/v1, metrics/v1): a span needs a 16-byte trace id and an 8-byte span
id, its parent span id is empty or 8 bytes, and so are the ids of its links; a log record's and
an exemplar's trace id is empty or 16 bytes and span id empty or 8 bytes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from google.protobuf.message import Message

from ingest.otlp_receiver.signals import OtlpSignal

_EMPTY_OR_TRACE = (0, 16)
_EMPTY_OR_SPAN = (0, 8)
#: Metric data kinds whose points may carry exemplars (summary points have none).
_WITH_EXEMPLARS = frozenset({"gauge", "sum", "histogram", "exponential_histogram"})


def _id_problem(what: str, value: bytes, allowed: tuple[int, ...]) -> str | None:
    if len(value) in allowed:
        return None
    sizes = " or ".join("empty" if n == 0 else f"{n} bytes" for n in allowed)
    return f"{what} must be {sizes}, got {len(value)} bytes"


def span_problem(span: Any) -> str | None:
    """Why a span is refused, or None if it is acceptable."""
    problem = (
        _id_problem("span trace_id", span.trace_id, (16,))
        or _id_problem("span span_id", span.span_id, (8,))
        or _id_problem("span parent_span_id", span.parent_span_id, _EMPTY_OR_SPAN)
    )
    if problem:
        return problem
    for link in span.links:
        problem = _id_problem("link trace_id", link.trace_id, (16,)) or _id_problem(
            "link span_id", link.span_id, (8,)
        )
        if problem:
            return problem
    return None


def log_problem(record: Any) -> str | None:
    """Why a log record is refused, or None if it is acceptable."""
    return _id_problem("log trace_id", record.trace_id, _EMPTY_OR_TRACE) or _id_problem(
        "log span_id", record.span_id, _EMPTY_OR_SPAN
    )


def point_problem(point: Any) -> str | None:
    """Why a metric data point is refused, or None if it is acceptable."""
    for exemplar in point.exemplars:
        problem = _id_problem(
            "exemplar trace_id", exemplar.trace_id, _EMPTY_OR_TRACE
        ) or _id_problem("exemplar span_id", exemplar.span_id, _EMPTY_OR_SPAN)
        if problem:
            return problem
    return None


def _points(metric: Any) -> Any | None:
    kind = metric.WhichOneof("data")
    if kind not in _WITH_EXEMPLARS:
        return None
    return getattr(metric, kind).data_points


def _spans_look_valid(spans: Iterable[Any]) -> bool:
    # Spans with links take the thorough pass; links are rare.
    return all(
        len(s.trace_id) == 16
        and len(s.span_id) == 8
        and len(s.parent_span_id) in _EMPTY_OR_SPAN
        and not s.links
        for s in spans
    )


def _logs_look_valid(records: Iterable[Any]) -> bool:
    return all(
        len(r.trace_id) in _EMPTY_OR_TRACE and len(r.span_id) in _EMPTY_OR_SPAN for r in records
    )


def entry_is_valid(signal: OtlpSignal, entry: Any) -> bool:
    """Quick test: True means every record of the resource entry is acceptable.

    False means "take the thorough pass", which may still find nothing wrong.
    """
    if signal.name == "traces":
        return all(_spans_look_valid(scope.spans) for scope in entry.scope_spans)
    if signal.name == "logs":
        return all(_logs_look_valid(scope.log_records) for scope in entry.scope_logs)
    for scope in entry.scope_metrics:
        for metric in scope.metrics:
            points = _points(metric)
            if points is not None and any(p.exemplars for p in points):
                return False
    return True


def _prune(records: Any, problem_of: Any, problems: list[str]) -> int:
    """Delete refused records from a repeated field; return how many were refused."""
    refused = 0
    for i in range(len(records) - 1, -1, -1):
        problem = problem_of(records[i])
        if problem is not None:
            problems.append(problem)
            del records[i]
            refused += 1
    return refused


def _prune_scopes(
    scopes: Any, records_of: Any, looks_valid: Any, problem_of: Any, problems: list[str]
) -> int:
    # Only scopes that fail the quick test are examined record by record. A scope emptied by
    # pruning goes too; one that came empty is left as the client sent it.
    refused = 0
    for i in range(len(scopes) - 1, -1, -1):
        records = records_of(scopes[i])
        if len(records) and not looks_valid(records):
            refused += _prune(records, problem_of, problems)
            if not len(records):
                del scopes[i]
    return refused


def _prune_metrics(scopes: Any, problems: list[str]) -> int:
    refused = 0
    for i in range(len(scopes) - 1, -1, -1):
        metrics = scopes[i].metrics
        if not len(metrics):
            continue
        for j in range(len(metrics) - 1, -1, -1):
            points = _points(metrics[j])
            if points is not None and len(points):
                refused += _prune(points, point_problem, problems)
                if not len(points):
                    del metrics[j]
        if not len(metrics):
            del scopes[i]
    return refused


class Pruning(NamedTuple):
    """What :func:`prune_entry` removed."""

    refused: int
    #: Why, one reason per refused record.
    problems: list[str]
    #: True when pruning left nothing of the entry: it should not be forwarded at all.
    emptied: bool


def prune_entry(signal: OtlpSignal, entry: Message) -> Pruning:
    """Remove refused records from a resource entry, in place."""
    e: Any = entry
    problems: list[str] = []
    if signal.name == "traces":
        scopes = e.scope_spans
        refused = _prune_scopes(
            scopes, lambda s: s.spans, _spans_look_valid, span_problem, problems
        )
    elif signal.name == "logs":
        scopes = e.scope_logs
        refused = _prune_scopes(
            scopes, lambda s: s.log_records, _logs_look_valid, log_problem, problems
        )
    else:
        scopes = e.scope_metrics
        refused = _prune_metrics(scopes, problems)
    return Pruning(refused, problems, bool(refused) and not len(scopes))
