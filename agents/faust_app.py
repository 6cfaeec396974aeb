"""The detectors' faust-streaming worker: telemetry topics in, anomaly events out.

faust runs the consumer group, the stream agents (one per signal topic, in batches), a timer
that closes the windows of quiet services, the anomaly producer, and the investigation intake
(an agent on the anomaly topic). What faust does *not* hold is the windowed state: faust tables
recover from changelog topics, and on the embedded broker (Tansu) that recovery can restore
wrong state because its ListOffsets answers are wrong. The state lives instead in
:class:`SQLiteDetectorState`, committed with the consumed offsets in one transaction after each
batch and before faust acknowledges the batch, so faust's committed offsets never run ahead of
it. On restart, records below the stored offsets are skipped: nothing counts twice, nothing is
lost. faust runs ``at_least_once`` (its exactly-once mode needs an idempotent aiokafka producer,
which the embedded broker refuses).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import faust
from google.protobuf.message import DecodeError

from agents.broker_credentials import broker_credentials
from agents.detection import DetectionEngine, DetectorConfig, decode_logs, decode_spans
from agents.detector_state import SQLiteDetectorState, TopicPartition
from agents.investigator_intake import InvestigationIntake
from agents.resources.store import open_store
from emberlake.settings import Settings, parse_pairs
from ingest.topics import HEADER_TENANT, Signal, Topics, record_key

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Record:
    """One consumed record, as the runtime needs it (independent of the Kafka client)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: Sequence[tuple[str, bytes]]

    @property
    def tenant(self) -> str:
        for name, value in self.headers:
            if name == HEADER_TENANT and value:
                return value.decode()
        # Older producers: the key is "tenant/service".
        return (self.key or b"default/").decode().partition("/")[0] or "default"


class DetectorRuntime:
    """The detection engine with its durable state and consumed offsets."""

    def __init__(self, settings: Settings, cluster: str):
        self.config = DetectorConfig.from_settings(settings.agents)
        self.engine = DetectionEngine(self.config)
        self.state = SQLiteDetectorState(settings.data_path / "detectors" / "state.db")
        services, windows, signatures = self.state.load()
        self.engine.load(services, windows, signatures, time.time())
        self.cluster = cluster
        self.offsets: dict[TopicPartition, int] = self.state.offsets(cluster)
        self.replayed = 0
        self.bad_records = 0

    def fold(self, signal: str, records: Iterable[Record], wall_now: float) -> None:
        """Fold a batch into the windows, close what is due, persist it all in one commit."""
        touched: dict[TopicPartition, int] = {}
        replayed = self.replayed
        for rec in records:
            tp = (rec.topic, rec.partition)
            if rec.offset < self.offsets.get(tp, 0):
                self.replayed += 1  # already in the stored state
                continue
            try:
                if signal == "spans":
                    self.engine.observe_spans(rec.tenant, list(decode_spans(rec.value)), wall_now)
                else:
                    self.engine.observe_logs(rec.tenant, list(decode_logs(rec.value)), wall_now)
            except DecodeError as exc:
                self.bad_records += 1
                log.warning("skipping undecodable %s record %s@%d: %s", signal, tp, rec.offset, exc)
            touched[tp] = self.offsets[tp] = rec.offset + 1
        if self.replayed > replayed:
            log.info(
                "skipped %d %s records already in the stored state",
                self.replayed - replayed,
                signal,
            )
        self.engine.close_ready(wall_now)
        self._persist(touched)

    def assigned(self, wall_now: float) -> None:
        """Partitions were (re)assigned: give quiet services a full idle period from now, so
        windows are not closed before the records that fill them are read again."""
        for key in self.engine.last_activity:
            self.engine.last_activity[key] = max(self.engine.last_activity[key], wall_now)

    def tick(self, wall_now: float) -> None:
        """Close the windows of services that went quiet."""
        self.engine.close_idle(wall_now)
        self._persist({})

    def _persist(self, offsets: dict[TopicPartition, int]) -> None:
        changes = self.engine.take_changes()
        if not changes and not offsets:
            return
        self.state.commit(changes, offsets, self.cluster)
        for anomaly in changes.anomalies:
            log.info(
                "anomaly %s %s/%s %s", anomaly.id, anomaly.tenant, anomaly.service, anomaly.summary
            )


def _headers(raw: Any) -> list[tuple[str, bytes]]:
    items = raw.items() if isinstance(raw, dict) else (raw or ())
    return [(str(k), bytes(v or b"")) for k, v in items]


def _record(event: Any) -> Record:
    msg = event.message
    return Record(
        msg.topic, msg.partition, msg.offset, msg.key, msg.value or b"", _headers(msg.headers)
    )


def _fatal(what: str) -> None:
    # State and offsets must never diverge from what faust acknowledges: stop at once, before
    # faust acks the batch; the supervisor restarts the worker, which resumes from the store.
    log.exception(
        "%s failed; stopping the detectors so no record is acknowledged unprocessed", what
    )
    logging.shutdown()
    os._exit(70)


def build_app(settings: Settings, runtime: DetectorRuntime, intake: bool = True) -> faust.App:
    """The faust app: detector agents per signal topic, the idle timer, the intake agent."""
    topics = Topics(settings.kafka.topic_prefix)
    app = faust.App(
        f"{settings.kafka.topic_prefix}-detectors",
        broker=[f"kafka://{h.strip()}" for h in settings.bootstrap_servers.split(",")],
        broker_credentials=broker_credentials(parse_pairs(settings.kafka.extra)),
        processing_guarantee="at_least_once",
        broker_session_timeout=settings.kafka.session_timeout_ms / 1000,
        broker_heartbeat_interval=max(0.5, settings.kafka.session_timeout_ms / 6000),
        broker_commit_interval=1.0,
        consumer_auto_offset_reset="earliest",
        store="memory://",
        web_enabled=False,
        topic_disable_leader=True,
        topic_partitions=settings.kafka.partitions,
        datadir=str(settings.data_path / "detectors" / "faust"),
    )

    def raw_topic(name: str) -> faust.TopicT:
        return app.topic(
            name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
        )

    anomalies_topic = raw_topic(topics.anomalies)
    cfg = settings.agents

    publishing = asyncio.Lock()

    async def publish() -> None:
        # One publisher at a time: both agents and the timer call this after their commits.
        async with publishing:
            await _publish()

    async def _publish() -> None:
        pending = runtime.state.unsent()
        if not pending:
            return
        try:
            futures = [
                await anomalies_topic.send(
                    key=record_key(a.tenant, a.service),
                    value=a.to_json(),
                    headers=[(HEADER_TENANT, a.tenant.encode())],
                )
                for a in pending
            ]
            await asyncio.gather(*futures)
        except Exception as exc:  # noqa: BLE001 - unsent rows stay in the outbox for next time
            log.warning("publishing %d anomalies failed, will retry: %s", len(pending), exc)
            return
        runtime.state.mark_sent([a.id for a in pending])

    def detector(signal: Signal) -> None:
        async def detect(stream: faust.StreamT) -> None:
            async for events in stream.take_events(  # type: ignore[attr-defined]
                cfg.detector_batch_records, within=cfg.detector_batch_seconds
            ):
                try:
                    runtime.fold(signal, [_record(e) for e in events], time.time())
                except Exception:  # noqa: BLE001
                    _fatal(f"folding a batch of {signal}")
                await publish()

        detect.__name__ = f"detect_{signal}"
        app.agent(raw_topic(topics.signal(signal)), name=f"detect-{signal}")(detect)

    detector("spans")
    detector("logs")

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def on_assigned(sender: Any, *args: Any, **kwargs: Any) -> None:
        runtime.assigned(time.time())

    @app.timer(interval=max(0.2, min(1.0, cfg.detector_window_seconds / 2)))
    async def close_idle_windows() -> None:
        try:
            runtime.tick(time.time())
        except Exception:  # noqa: BLE001
            _fatal("closing idle windows")
        await publish()

    if intake:
        investigations = InvestigationIntake(open_store(settings), cfg.incident_window_seconds)

        @app.agent(anomalies_topic, name="investigation-intake")
        async def take_in(stream: faust.StreamT) -> None:
            async for event in stream.events():
                result = await asyncio.to_thread(investigations.handle_raw, event.value or b"")
                if result is not None and result.silenced_by and not result.duplicate:
                    log.info("anomaly silenced by %s", result.silenced_by)
                elif result is not None and not result.duplicate:
                    log.info(
                        "anomaly attached to %s%s",
                        result.investigation,
                        " (new investigation)" if result.opened else "",
                    )

    return app


def run_detectors(settings: Settings, intake: bool = True) -> None:
    """Run the detectors' faust worker in this process until it is stopped (SIGTERM/SIGINT)."""
    from ingest.kafka import cluster_id, ensure_emberlake_topics

    ensure_emberlake_topics(settings)
    runtime = DetectorRuntime(settings, cluster_id(settings))
    app = build_app(settings, runtime, intake=intake)
    worker = faust.Worker(
        app,
        loglevel=settings.log_level,
        quiet=True,
        override_logging=False,
        redirect_stdouts=False,
    )
    worker.execute_from_commandline()
