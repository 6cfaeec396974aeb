"""Kafka edge: client configuration, topic creation and an acknowledging producer.

Everything that touches confluent-kafka for producing and administration lives here, so the
rest of emberlake speaks in topics, keys and futures.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from emberlake.errors import BrokerError, BrokerUnavailable
from emberlake.settings import Settings, parse_pairs
from ingest.topics import Topics

log = logging.getLogger(__name__)


def client_config(settings: Settings, **extra: Any) -> dict[str, Any]:
    """Base librdkafka configuration for any client of the configured broker."""
    conf: dict[str, Any] = {"bootstrap.servers": settings.bootstrap_servers}
    conf.update(parse_pairs(settings.kafka.extra))
    conf.update(extra)
    return conf


def producer_config(settings: Settings) -> dict[str, Any]:
    k = settings.kafka
    return client_config(
        settings,
        **{
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": k.compression,
            "linger.ms": k.linger_ms,
            "delivery.timeout.ms": k.delivery_timeout_ms,
            "message.max.bytes": 32 * 1024 * 1024,
            "queue.buffering.max.kbytes": 512 * 1024,
        },
    )


def consumer_config(settings: Settings, group_id: str, **extra: Any) -> dict[str, Any]:
    conf = client_config(
        settings,
        **{
            "group.id": group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": settings.kafka.session_timeout_ms,
            "heartbeat.interval.ms": max(500, settings.kafka.session_timeout_ms // 6),
            "fetch.max.bytes": 64 * 1024 * 1024,
            "max.partition.fetch.bytes": 16 * 1024 * 1024,
        },
    )
    conf.update(extra)
    return conf


def ensure_topics(settings: Settings, names: Iterable[str], timeout: float = 30.0) -> None:
    """Create the topics that do not exist yet; existing ones are left as they are."""
    admin = AdminClient(client_config(settings))
    try:
        existing = set(admin.list_topics(timeout=timeout).topics)
    except KafkaException as exc:
        raise BrokerError(
            f"cannot reach the broker at {settings.bootstrap_servers}: {exc}"
        ) from None
    wanted = [
        NewTopic(
            name,
            num_partitions=settings.kafka.partitions,
            replication_factor=settings.kafka.replication_factor,
        )
        for name in names
        if name not in existing
    ]
    if not wanted:
        return
    for name, fut in admin.create_topics(wanted, request_timeout=timeout).items():
        try:
            fut.result()
        except KafkaException as exc:
            if exc.args and exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise BrokerError(f"cannot create topic {name}: {exc}") from None


def ensure_emberlake_topics(settings: Settings) -> None:
    topics = Topics(settings.kafka.topic_prefix)
    ensure_topics(settings, [*topics.all_signals, topics.anomalies])


def cluster_id(settings: Settings, timeout: float = 10.0) -> str:
    """The broker cluster's id: a fresh embedded broker has a new one, real Kafka keeps its own."""
    admin = AdminClient(client_config(settings))
    try:
        md = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise BrokerError(
            f"cannot reach the broker at {settings.bootstrap_servers}: {exc}"
        ) from None
    return str(md.cluster_id or "")


Headers = Sequence[tuple[str, bytes]]


#: Errors librdkafka reports per record, not as fatal, that fail every later record of the
#: producer all the same: a restarted memory-backed broker hands out producer ids afresh, so
#: another producer (a journal replay, say) may own this one's id now, with a newer epoch.
_FENCED = frozenset({KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH})


def _is_fatal(err: KafkaError) -> bool:
    """True for errors after which this producer instance can never produce again."""
    return bool(err.fatal()) or err.code() in _FENCED or err.code() == KafkaError._FATAL


class KafkaSink:
    """An idempotent, acks=all producer whose sends resolve only once the broker has them.

    A background thread serves delivery callbacks, so callers on any thread or event loop get a
    future per record that completes on delivery or fails with :class:`BrokerUnavailable`.
    """

    def __init__(self, settings: Settings, conf: dict[str, Any] | None = None):
        self._conf = conf or producer_config(settings)
        #: Set when the producer hit a fatal error; the serving thread then replaces it.
        self._fatal = threading.Event()
        #: Producers replaced after a fatal error: a change may mean a different broker cluster.
        self.generation = 0
        self._producer = self._new_producer()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="kafka-sink", daemon=True)
        self._thread.start()

    def _new_producer(self) -> Producer:
        return Producer({**self._conf, "error_cb": self._on_error})

    def _on_error(self, err: KafkaError) -> None:
        # An idempotent producer's fatal error (e.g. UNKNOWN_PRODUCER_ID once a restarted,
        # memory-backed broker forgot it) fails every later produce: it must be replaced.
        if _is_fatal(err):
            log.error("the Kafka producer failed for good (%s); starting a new one", err.str())
            self._fatal.set()

    def renew(self) -> None:
        """Replace the producer soon (on the serving thread), failing what it still holds. For
        a broker that became another cluster: an idempotent producer of the old one may
        otherwise wait on it for good, its records timing out."""
        self._fatal.set()

    def _replace_fatal_producer(self) -> None:
        self._fatal.clear()
        old, self._producer = self._producer, self._new_producer()
        self.generation += 1
        try:
            # Fail what the old producer still holds: those requests were not acknowledged,
            # so their clients retry them on the new producer.
            old.purge()
            old.poll(0)
            old.close()
        except Exception:
            log.exception("closing the failed producer")

    def _serve(self) -> None:
        while not self._stop.is_set():
            if self._fatal.is_set():
                self._replace_fatal_producer()
            try:
                self._producer.poll(0.05)
            except KafkaException as exc:
                if exc.args and _is_fatal(exc.args[0]):
                    self._on_error(exc.args[0])
                else:
                    log.exception("delivery callback failed")
            except Exception:
                # A failing callback must not stop delivery reports for every later record.
                log.exception("delivery callback failed")

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: Headers = (),
        partition: int | None = None,
    ) -> concurrent.futures.Future[tuple[int, int]]:
        """Produce one record (to ``partition``, else where its key hashes); the future yields
        (partition, offset) once it is acknowledged."""
        fut: concurrent.futures.Future[tuple[int, int]] = concurrent.futures.Future()

        def on_delivery(err: KafkaError | None, msg: Any) -> None:
            try:
                if err is not None:
                    if _is_fatal(err):
                        self._fatal.set()
                    fut.set_exception(
                        BrokerUnavailable(f"broker did not take the record: {err.str()}")
                    )
                else:
                    fut.set_result((msg.partition(), msg.offset()))
            except concurrent.futures.InvalidStateError:
                pass  # the caller stopped waiting (its request was cancelled)

        record: dict[str, Any] = {
            "value": value,
            "key": key,
            "headers": list(headers),
            "on_delivery": on_delivery,
        }
        if partition is not None:
            record["partition"] = partition
        for attempt in range(2):
            if self._stop.is_set():
                raise BrokerUnavailable("producer is closing")
            try:
                self._producer.produce(topic, **record)
                return fut
            except BufferError:
                # The local queue is full: the broker is slow or gone. Wait a little, once,
                # then refuse rather than block the caller (an event loop, often).
                if attempt == 0:
                    self._producer.poll(0.1)
            except KafkaException as exc:
                if exc.args and _is_fatal(exc.args[0]):
                    self._fatal.set()
                raise BrokerUnavailable(f"cannot produce to {topic}: {exc}") from None
        raise BrokerUnavailable("the producer queue is full: the broker is slow or unreachable")

    async def send_all(
        self, records: Sequence[tuple[str, bytes, bytes, Headers]]
    ) -> list[tuple[int, int]]:
        """Produce records and wait until every one is acknowledged (or raise); returns the
        (partition, offset) of each."""
        futures = [asyncio.wrap_future(self.send(*r)) for r in records]
        results = await asyncio.gather(*futures, return_exceptions=True)
        positions: list[tuple[int, int]] = []
        for res in results:
            if isinstance(res, BaseException):
                raise res if isinstance(res, BrokerUnavailable) else BrokerUnavailable(str(res))
            positions.append(res)
        return positions

    def partition_count(self, topic: str, timeout: float = 10.0) -> int:
        """How many partitions ``topic`` has (0 when the broker does not know it)."""
        try:
            metadata = self._producer.list_topics(topic, timeout=timeout)
        except KafkaException as exc:
            raise BrokerUnavailable(f"cannot read the partitions of {topic}: {exc}") from None
        found = metadata.topics.get(topic)
        return 0 if found is None or found.error is not None else len(found.partitions)

    def flush(self, timeout: float = 10.0) -> int:
        return int(self._producer.flush(timeout))

    def close(self, timeout: float = 10.0) -> None:
        """Flush for up to ``timeout`` seconds, fail what is still undelivered, disconnect."""
        if self._stop.is_set():
            return
        undelivered = self.flush(timeout)
        self._stop.set()
        self._thread.join(timeout=2)
        if undelivered:
            # Fail the waiting futures now; close() would otherwise wait for the broker again.
            self._producer.purge()
            self._producer.poll(0)
        # Without close() the producer keeps its broker connections until garbage-collected.
        self._producer.close()
