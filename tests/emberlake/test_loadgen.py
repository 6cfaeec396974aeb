"""The acknowledging span sender against a real gRPC trace service, and its send log."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from emberlake.loadgen import RUN_ATTRIBUTE, UID_ATTRIBUTE, AckedSpanSender
from emberlake.sendlog import SendLog, SentBatch
from tests.conftest import free_port


class TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    """Keeps what it was sent; refuses (INVALID_ARGUMENT, not retried) while ``refuse`` is set."""

    def __init__(self) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self.refuse = threading.Event()

    def Export(  # the gRPC method name
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        if self.refuse.is_set():
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "refused")
        self.requests.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()

    def received(self) -> dict[str, str]:
        """uid -> the run named on its resource."""
        found = {}
        for request in self.requests:
            for rs in request.resource_spans:
                res = {a.key: a.value.string_value for a in rs.resource.attributes}
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        attrs = {a.key: a.value.string_value for a in span.attributes}
                        found[attrs[UID_ATTRIBUTE]] = res[RUN_ATTRIBUTE]
        return found


@pytest.fixture
def service() -> Iterator[tuple[TraceService, str]]:
    servicer = TraceService()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(servicer, server)
    port = free_port()
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    yield servicer, f"127.0.0.1:{port}"
    server.stop(grace=None)


def test_every_acknowledged_span_arrived_with_its_uid_and_run(
    service: tuple[TraceService, str],
) -> None:
    servicer, endpoint = service
    sender = AckedSpanSender(endpoint, "r1", batch=7, services=3, timeout=5)
    sender.send_now(4)
    sender.stop()
    assert len(sender.log.batches) == 4
    assert all(b.acked and b.started <= b.ended for b in sender.log.batches)
    assert len(sender.log.acked()) == 28
    assert servicer.received() == dict.fromkeys(sender.log.acked(), "r1")
    services = {
        a.value.string_value
        for request in servicer.requests
        for rs in request.resource_spans
        for a in rs.resource.attributes
        if a.key == "service.name"
    }
    assert services == {"svc0", "svc1", "svc2"}


def test_a_refused_request_is_sent_but_not_acknowledged(
    service: tuple[TraceService, str],
) -> None:
    servicer, endpoint = service
    sender = AckedSpanSender(endpoint, "r2", batch=5, timeout=5)
    sender.send_now(1)
    servicer.refuse.set()
    sender.send_now(1)
    sender.stop()
    assert [b.acked for b in sender.log.batches] == [True, False]
    assert len(sender.log.sent()) == 10
    assert sender.log.acked() == set(sender.log.batches[0].uids)


def test_steady_pacing_keeps_the_offered_rate(service: tuple[TraceService, str]) -> None:
    _, endpoint = service
    sender = AckedSpanSender(endpoint, "r3", batch=2, interval=0.1, steady=True, timeout=5)
    started = time.monotonic()
    sender.start()
    time.sleep(1.0)
    sender.stop()
    sender.stop()  # a second stop is harmless
    elapsed = time.monotonic() - started
    requests = len(sender.log.batches)
    # One request every 0.1 s from the start, give or take the one in flight at the end.
    assert elapsed / 0.1 - 3 <= requests <= elapsed / 0.1 + 2, (requests, elapsed)
    assert sender.log.acked_count() == 2 * requests


def test_a_failing_sender_raises_on_stop(
    service: tuple[TraceService, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, endpoint = service
    sender = AckedSpanSender(endpoint, "r4", batch=1, timeout=5)

    def broken(spans: Any) -> Any:
        raise RuntimeError("exporter broke")

    monkeypatch.setattr(sender._exporter, "export", broken)
    sender.start()
    with pytest.raises(RuntimeError, match="exporter broke"):
        sender.stop()


def test_in_flight_at_names_requests_unfinished_at_a_moment() -> None:
    log = SendLog()
    log.add(SentBatch(["a"], started=1.0, ended=2.0, acked=True))
    log.add(SentBatch(["b"], started=3.0))  # never finished
    assert log.in_flight_at([1.5]) == {"a"}
    assert log.in_flight_at([10.0]) == {"b"}
    assert log.in_flight_at([2.5]) == set()
    assert log.acked() == {"a"} and log.acked_count() == 1 and log.sent() == {"a", "b"}
