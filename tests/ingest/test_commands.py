"""``emberlake receiver`` as its own process: creates its topics, serves, stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

import ingest
from emberlake.broker import wait_for_port
from emberlake.settings import Settings, to_env
from ingest.otlp_receiver.signals import TRACES
from tests.ingest.harness import grpc_export, http_request, read_records
from tests.ingest.otlp_receiver.otlp_data import spans_request

pytestmark = pytest.mark.integration


def test_receiver_command_serves_until_sigterm(settings: Settings, tmp_path: Path) -> None:
    root = Path(ingest.__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMBERLAKE_")}
    env.update(to_env(settings))
    env["PYTHONPATH"] = str(root)
    log_path = tmp_path / "receiver.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "emberlake.cli", "receiver"],
            env=env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        r = settings.receiver
        wait_for_port(r.host, r.grpc_port, 30)
        wait_for_port(r.host, r.http_port, 30)
        body = spans_request(["cli"]).SerializeToString()
        assert grpc_export(f"{r.host}:{r.grpc_port}", TRACES, body).code == grpc.StatusCode.OK
        reply = http_request(
            f"http://{r.host}:{r.http_port}/v1/traces",
            body,
            {"Content-Type": "application/x-protobuf"},
        )
        assert reply.status == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0, log_path.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "receiver stopped" in log_path.read_text()
    records = read_records(settings, "spans", count=2)
    assert [r.key for r in records] == [b"default/cli", b"default/cli"]
