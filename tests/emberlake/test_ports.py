"""``emberlake up`` refuses to start when a port it listens on is held by something else."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from emberlake.local import LocalSystem
from emberlake.ports import Listener, in_use, listeners
from emberlake.settings import KafkaSettings, QuerydSettings, Settings
from emberlake.supervisor import last_log_line


def test_listeners_follow_the_broker_and_the_chosen_components() -> None:
    embedded = Settings(queryd=QuerydSettings(port=8123))
    assert [(p.setting, p.port) for p in listeners(embedded, ["queryd"])] == [
        ("kafka.embedded_port", 9092),
        ("queryd.port", 8123),
    ]
    external = Settings(kafka=KafkaSettings(bootstrap_servers="kafka:9092"))
    assert [p.setting for p in listeners(external, ["receiver", "writer"])] == [
        "receiver.grpc_port",
        "receiver.http_port",
    ]
    assert Listener("queryd.port", "127.0.0.1", 1).env == "EMBERLAKE_QUERYD_PORT"


def test_a_held_port_is_in_use_and_a_closed_one_is_not() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        assert in_use(Listener("queryd.port", "0.0.0.0", port))
    assert not in_use(Listener("queryd.port", "127.0.0.1", port))


def test_up_names_the_setting_of_a_port_held_elsewhere_and_starts_nothing(tmp_path: Path) -> None:
    system = LocalSystem(tmp_path / "data")
    with socket.socket() as held:
        held.bind(("127.0.0.1", system.query_port))
        held.listen()
        done = subprocess.run(
            [sys.executable, "-m", "emberlake.cli", "up"],
            env=system.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"port {system.query_port} (queryd.port)" in done.stderr
    assert "EMBERLAKE_QUERYD_PORT" in done.stderr
    assert not (tmp_path / "data" / "logs" / "broker.log").exists()  # no broker was started


def test_last_log_line_is_the_last_non_empty_one(tmp_path: Path) -> None:
    log = tmp_path / "queryd.log"
    log.write_text("starting\nOSError: [Errno 98] Address already in use\n\n")
    assert last_log_line(log) == "OSError: [Errno 98] Address already in use"
    assert last_log_line(tmp_path / "missing.log") == ""
