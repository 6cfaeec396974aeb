"""Soak under faults, and lake writer scaling.

1. soak: ``emberlake up`` (embedded broker, receiver, writer, query daemon) under a steady load
   of spans sent through the OpenTelemetry SDK's OTLP/gRPC exporter, one request at a time so
   every acknowledgement is known. Every ``--kill-every`` seconds the writer or the receiver
   (in turn) is SIGKILLed; the supervisor restarts it. After ``--seconds`` the load stops, the
   lake is read back and the run prints sent / acked / stored / lost (acknowledged but not
   stored) / duplicated. A request in flight when the receiver died may be stored twice (the
   client resends what it was never told succeeded; OTLP has no idempotency key): such
   duplicates are counted apart.
2. writer scaling: a backlog of spans is produced to a fresh embedded broker, then drained into
   a fresh lake by 1, then 2 ``emberlake writer`` processes in one consumer group; spans/s of
   each and the ratio.

    python -m benchmarks.soak_bench [--seconds 60] [--kill-every 12] [--rate 2000]
                                    [--backlog 300000] [--only soak|scaling]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

from benchmarks.lake_bench import trace_request
from emberlake.broker import EmbeddedBroker
from emberlake.loadgen import UID_ATTRIBUTE, AckedSpanSender
from emberlake.local import LocalSystem, free_port
from emberlake.settings import KafkaSettings, LakeSettings, Settings, to_env

BATCH = 50


# -- soak -----------------------------------------------------------------------------------


def _component_pid(system: LocalSystem, name: str) -> int | None:
    if not system.log_path.exists():
        return None
    found = re.findall(rf"started {name} \(pid (\d+)", system.log_path.read_text(errors="replace"))
    return int(found[-1]) if found else None


def _lake_counts(data_dir: Path) -> Counter[str]:
    from lake.catalog import open_catalog

    catalog = open_catalog(Settings(data_dir=str(data_dir)))
    counts: Counter[str] = Counter()
    if not catalog.table_exists(("default", "spans")):
        return counts
    rows = catalog.load_table(("default", "spans")).scan(selected_fields=("attributes",))
    for attributes in rows.to_arrow().column("attributes").to_pylist():
        uid = dict(attributes or ()).get(UID_ATTRIBUTE)
        if uid is not None:
            counts[uid] += 1
    return counts


def soak(seconds: float, kill_every: float, rate: float, workdir: Path) -> None:
    system = LocalSystem(workdir / "soak", only=("writer", "queryd", "receiver"))
    system.start()
    run = uuid.uuid4().hex[:8]
    sender = AckedSpanSender(
        f"127.0.0.1:{system.grpc_port}",
        run,
        batch=BATCH,
        interval=BATCH / rate,
        steady=True,
        service_prefix="soak",
        span_name="GET /soak",
        timeout=30.0,
    )
    log = sender.log
    kills: Counter[str] = Counter()
    receiver_deaths: list[float] = []
    started = time.monotonic()
    sender.start()
    try:
        victims = ["writer", "receiver"]
        n = 0
        while time.monotonic() - started < seconds:
            time.sleep(min(kill_every, max(0.0, seconds - (time.monotonic() - started))))
            if time.monotonic() - started >= seconds:
                break
            name = victims[n % len(victims)]
            n += 1
            pid = _component_pid(system, name)
            if pid is None:
                continue
            if name == "receiver":
                receiver_deaths.append(time.monotonic())
            try:
                os.kill(pid, signal.SIGKILL)
                kills[name] += 1
                print(f"  t={time.monotonic() - started:5.1f}s SIGKILL {name} (pid {pid})")
            except ProcessLookupError:
                pass
        sender.stop(timeout=120)
        acked = log.acked()
        deadline = time.monotonic() + 180
        counts = _lake_counts(system.data_dir)
        while not acked <= set(counts) and time.monotonic() < deadline:
            time.sleep(2.0)
            counts = _lake_counts(system.data_dir)
    finally:
        sender.stop(timeout=120)
        system.stop()
    sent = log.sent()
    ambiguous = log.in_flight_at(receiver_deaths)
    lost = acked - set(counts)
    duplicated = {u for u, c in counts.items() if c > 1}
    elapsed = time.monotonic() - started
    print(
        f"soak: {seconds:.0f}s at ~{rate:.0f} spans/s, kills {dict(kills)}\n"
        f"  sent {len(sent)}  acked {len(acked)}  stored {len(counts)}"
        f"  lost (acked, not stored) {len(lost)}"
        f"  duplicated {len(duplicated - ambiguous)}"
        f" (+{len(duplicated & ambiguous)} in flight at a receiver kill)"
        f"  unacked-and-not-stored {len(sent - acked - set(counts))}"
        f"  [{elapsed:.0f}s wall]"
    )


# -- writer scaling ---------------------------------------------------------------------------


def _produce_backlog(settings: Settings, spans: int, per_request: int = 500) -> int:
    from ingest.kafka import KafkaSink, ensure_emberlake_topics
    from ingest.topics import HEADER_RECEIVED_US, HEADER_SIGNAL, HEADER_TENANT, Topics, record_key

    ensure_emberlake_topics(settings)
    rng = random.Random(7)
    payloads = [trace_request(f"svc{i}", rng, per_request) for i in range(16)]
    topic = Topics(settings.kafka.topic_prefix).signal("spans")
    sink = KafkaSink(settings)
    futures = []
    for i in range(spans // per_request):
        service = f"svc{i % 16}"
        headers = [
            (HEADER_TENANT, b"default"),
            (HEADER_SIGNAL, b"spans"),
            (HEADER_RECEIVED_US, str(time.time_ns() // 1000).encode()),
        ]
        futures.append(sink.send(topic, record_key("default", service), payloads[i % 16], headers))
    sink.flush(120)
    for fut in futures:
        fut.result(timeout=120)
    sink.close()
    return len(futures) * per_request


def _total_rows(settings: Settings) -> int:
    from lake.catalog import open_catalog

    catalog = open_catalog(settings)
    if not catalog.table_exists(("default", "spans")):
        return 0
    snapshot = catalog.load_table(("default", "spans")).current_snapshot()
    if snapshot is None or snapshot.summary is None:
        return 0
    return int(snapshot.summary.get("total-records", "0"))


def _drain(bootstrap: str, workdir: Path, writers: int, spans: int) -> tuple[float, float]:
    """Backlog into a fresh lake with ``writers`` processes: (spans/s from their start, spans/s
    after the first commit, which leaves out start-up and the group join)."""
    prefix = f"scale{uuid.uuid4().hex[:8]}"
    settings = Settings(
        data_dir=str(workdir / f"writers-{writers}"),
        kafka=KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=prefix, partitions=4),
        lake=LakeSettings(writer_group=f"{prefix}-writer", batch_max_rows=50_000),
    )
    total = _produce_backlog(settings, spans)
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMBERLAKE_")}
    env.update(to_env(settings))
    log_dir = workdir / f"writers-{writers}-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    procs = []
    started = time.monotonic()
    for n in range(writers):
        with (log_dir / f"writer-{n}.log").open("wb") as out:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "emberlake.cli", "writer", "--drain-seconds", "0"],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            )
    first: float | None = None
    first_rows = 0
    try:
        while True:
            rows = _total_rows(settings)
            if rows and first is None:
                first, first_rows = time.monotonic(), rows
            if rows >= total:
                break
            if time.monotonic() - started > 600:
                raise RuntimeError(f"{writers} writer(s) stored {rows} of {total} in 600s")
            time.sleep(0.1)
        done = time.monotonic()
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=120)
    assert first is not None
    if rows == first_rows:  # all of it in the first commit: no steady-state figure
        return total / (done - started), float("nan")
    return total / (done - started), (total - first_rows) / (done - first)


def scaling(spans: int, workdir: Path) -> None:
    broker = EmbeddedBroker(free_port(), workdir / "broker.log")
    broker.start()
    try:
        one = _drain(broker.bootstrap_servers, workdir, 1, spans)
        two = _drain(broker.bootstrap_servers, workdir, 2, spans)
    finally:
        broker.stop()
    print(
        f"writer scaling: {spans} spans backlog, 4 partitions, {os.cpu_count()} cores\n"
        f"  1 writer : {one[0]:>9,.0f} spans/s (incl. start-up)  {one[1]:>9,.0f} spans/s"
        " (from first commit)\n"
        f"  2 writers: {two[0]:>9,.0f} spans/s (incl. start-up)  {two[1]:>9,.0f} spans/s"
        " (from first commit)\n"
        f"  ratio 2/1: {two[0] / one[0]:.2f}x (incl. start-up), {two[1] / one[1]:.2f}x"
        " (from first commit)"
    )


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="soak_bench", description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--kill-every", type=float, default=12.0)
    parser.add_argument("--rate", type=float, default=2000.0, help="spans/s offered")
    parser.add_argument("--backlog", type=int, default=300_000, help="spans for writer scaling")
    parser.add_argument("--only", choices=("soak", "scaling"), default=None)
    args = parser.parse_args(argv)
    print(f"soak_bench on {os.cpu_count()} cores", flush=True)
    with tempfile.TemporaryDirectory(prefix="soak-bench-") as tmp:
        work = Path(tmp)
        if args.only in (None, "soak"):
            soak(args.seconds, args.kill_every, args.rate, work)
        if args.only in (None, "scaling"):
            scaling(args.backlog, work)


if __name__ == "__main__":
    main(sys.argv[1:])
