"""The detectors end to end: a real broker, the faust worker as its own process, real topics.

Steady traffic sent through the OpenTelemetry SDK and the OTLP receiver opens nothing; an
incident in one service opens exactly one investigation with its anomalies; a SIGKILL mid-stream
loses no windowed state and duplicates no anomaly.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from agents.resources.service import ResourceService
from agents.resources.sqlite import SQLiteResourceStore
from emberlake.settings import AgentSettings, Settings, to_env
from ingest.kafka import consumer_config, ensure_emberlake_topics
from ingest.otlp_receiver import ReceiverThread
from ingest.topics import Topics
from tests.agents.traffic import SdkTraffic, Traffic

pytestmark = pytest.mark.integration

WINDOW = 1.0


@pytest.fixture
def det_settings(settings: Settings) -> Settings:
    agents = dataclasses.replace(
        AgentSettings(),
        detector_window_seconds=WINDOW,
        detector_warmup_windows=4,
        detector_min_requests=10,
        detector_lateness_seconds=0.5,
        detector_idle_seconds=3.0,
        # These tests end by stopping their traffic, which silence alerts would rightly report;
        # they count the incident's anomalies only (silence is covered by the engine's tests).
        detector_silence_alerts=False,
        detector_batch_seconds=0.2,
        incident_window_seconds=600.0,
    )
    s = settings.replace(agents=agents)
    ensure_emberlake_topics(s)
    return s


class DetectorProcess:
    """``emberlake detectors`` in a child process, logging to a file."""

    def __init__(self, settings: Settings, log_path: Path):
        self.settings = settings
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EMBERLAKE_")}
        env.update(to_env(self.settings))
        env["PYTHONUNBUFFERED"] = "1"
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "emberlake.cli", "detectors"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


@pytest.fixture
def detector(det_settings: Settings, tmp_path: Path) -> Iterator[DetectorProcess]:
    proc = DetectorProcess(det_settings, tmp_path / "detectors.log")
    yield proc
    proc.stop()


@pytest.fixture
def traffic(det_settings: Settings) -> Iterator[Traffic]:
    t = Traffic(det_settings)
    yield t
    t.stop()


@pytest.fixture
def sdk_traffic(det_settings: Settings) -> Iterator[SdkTraffic]:
    with ReceiverThread(det_settings) as receiver:
        t = SdkTraffic(receiver.grpc_endpoint)
        yield t
        t.stop()


def state_db(settings: Settings) -> Path:
    return settings.data_path / "detectors" / "state.db"


def query_state(settings: Settings, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    path = state_db(settings)
    if not path.exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql, args).fetchall()
    except sqlite3.OperationalError:
        return []  # schema not created yet
    finally:
        conn.close()


def service_state(settings: Settings, service: str, signal: str = "spans") -> dict[str, Any]:
    rows = query_state(
        settings,
        "SELECT state FROM services WHERE tenant = 'default' AND service = ? AND signal = ?",
        service,
        signal,
    )
    return json.loads(rows[0][0]) if rows else {}


def wait_for(what: str, check: Callable[[], Any], timeout: float, proc: DetectorProcess) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        assert proc.proc is not None and proc.proc.poll() is None, f"detectors died:\n{proc.log()}"
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}\n{proc.log()}")


def open_investigations(settings: Settings) -> list[dict[str, Any]]:
    path = settings.data_path / "resources.db"
    if not path.exists():
        return []
    service = ResourceService(SQLiteResourceStore(path))
    return service.list(
        "tenants/default/investigations", filter='state = "OPEN"', page_size=100
    ).resources


def anomalies_on_topic(settings: Settings) -> list[dict[str, Any]]:
    topic = Topics(settings.kafka.topic_prefix).anomalies
    consumer = Consumer(consumer_config(settings, f"check-{time.time_ns()}"))
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(settings.kafka.partitions)])
        out: list[dict[str, Any]] = []
        idle_until = time.monotonic() + 3
        while time.monotonic() < idle_until:
            msg = consumer.poll(0.3)
            if msg is None or msg.error():
                continue
            out.append(json.loads(msg.value()))
            idle_until = time.monotonic() + 2
        return out
    finally:
        consumer.close()


def warmed(settings: Settings, windows: int) -> Callable[[], bool]:
    def check() -> bool:
        return all(
            service_state(settings, s).get("windows_closed", 0) >= windows
            for s in ("checkout", "payments")
        )

    return check


def test_incident_through_the_sdk_opens_one_investigation_and_steady_traffic_none(
    det_settings: Settings, detector: DetectorProcess, sdk_traffic: SdkTraffic
) -> None:
    traffic = sdk_traffic
    detector.start()
    traffic.start()
    wait_for("warm-up", warmed(det_settings, 8), 60, detector)
    # Steady traffic alone: nothing anomalous, nothing opened.
    assert query_state(det_settings, "SELECT id FROM outbox") == []
    assert open_investigations(det_settings) == []

    traffic.incident.add("checkout")
    time.sleep(3 * WINDOW)
    traffic.incident.clear()
    started = time.monotonic()
    opened = wait_for("an investigation", lambda: open_investigations(det_settings), 60, detector)
    assert time.monotonic() - started < 60
    # Let every anomaly of the incident arrive, then look again.
    time.sleep(4 * WINDOW)
    opened = open_investigations(det_settings)
    assert len(opened) == 1, opened
    inv = opened[0]
    assert inv["service"] == "checkout"
    kinds = set()
    service = ResourceService(SQLiteResourceStore(det_settings.data_path / "resources.db"))
    for name in inv["anomalies"]:
        a = service.get(name)
        assert a["investigation"] == inv["name"] and a["service"] == "checkout"
        brief = {k: a[k] for k in ("kind", "metric", "summary")}
        assert a["series"], brief
        assert a["example_trace_ids"] or a["kind"] == "request_rate", brief
        kinds.add(a["kind"])
    assert {"error_rate", "latency"} <= kinds, kinds
    assert inv["anomaly_count"] == len(inv["anomalies"]) >= 2
    # Every published anomaly is checkout's; payments stayed quiet.
    published = anomalies_on_topic(det_settings)
    assert published and {a["service"] for a in published} == {"checkout"}


def test_sigkill_mid_stream_loses_no_window_and_duplicates_no_anomaly(
    det_settings: Settings, detector: DetectorProcess, traffic: Traffic
) -> None:
    detector.start()
    traffic.start()
    wait_for("warm-up", warmed(det_settings, 6), 60, detector)
    traffic.incident.add("checkout")
    wait_for(
        "a first anomaly", lambda: query_state(det_settings, "SELECT id FROM outbox"), 30, detector
    )
    detector.kill()  # mid-incident, records still flowing
    time.sleep(1.5)
    detector.start()
    time.sleep(2 * WINDOW)
    traffic.incident.clear()
    time.sleep(4 * WINDOW)
    traffic.stop()
    last_window = max(w for _, w in traffic.produced)
    window_us = int(WINDOW * 1_000_000)

    def all_closed() -> bool:
        return all(
            service_state(det_settings, s).get("closed_through_us", -1) >= last_window
            for s in ("checkout", "payments")
        )

    wait_for("every window to close", all_closed, 60, detector)

    # No lost or doubled windowed state: each window's request count, as the detector saw it,
    # equals what was produced; windows are contiguous.
    for service in ("checkout", "payments"):
        history = service_state(det_settings, service)["metrics"]["requests_per_second"]["h"]
        seen = {int(start): round(observed * WINDOW) for start, observed, _ in history}
        produced = {w: n for (s, w), n in traffic.produced.items() if s == service}
        common = sorted(set(seen) & set(produced))
        assert len(common) >= 15, (service, len(common))
        assert common == list(range(common[0], common[-1] + window_us, window_us))
        assert {w: seen[w] for w in common} == {w: produced[w] for w in common}, service

    # No duplicate anomalies: one id per (kind, metric, window), one investigation.
    published = anomalies_on_topic(det_settings)
    by_window: dict[tuple[str, str, str, str], set[str]] = {}
    for a in published:
        key = (a["service"], a["kind"], a["metric"], a["window_start"])
        by_window.setdefault(key, set()).add(a["id"])
    doubled = {k: ids for k, ids in by_window.items() if len(ids) != 1}
    assert by_window and not doubled, doubled
    strays = [
        f"{a['service']} {a['kind']} {a['window_start']}: {a['summary']}"
        for a in published
        if a["service"] != "checkout"
    ]
    assert not strays, "\n".join(strays)
    time.sleep(2)
    opened = open_investigations(det_settings)
    assert len(opened) == 1 and opened[0]["service"] == "checkout"
    assert opened[0]["anomaly_count"] == len(by_window)
    stored = ResourceService(SQLiteResourceStore(det_settings.data_path / "resources.db")).list(
        "tenants/default/anomalies", page_size=1000
    )
    assert stored.total_size == len(by_window)
