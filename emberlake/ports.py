"""The ports ``emberlake up`` is about to listen on, and which of them are taken already.

A port held by another program (a second emberlake, a web server on 8080, a Kafka on 9092) would
otherwise show only as a component restarting over and over, or, for the broker port, as the
components silently using a broker that is not emberlake's. ``emberlake up`` checks first and
says which setting to change.
"""

from __future__ import annotations

import socket
from collections.abc import Collection
from dataclasses import dataclass

from emberlake.settings import Settings


@dataclass(frozen=True)
class Listener:
    """A port one part of the system listens on, and the setting that chooses it."""

    setting: str
    host: str
    port: int

    @property
    def env(self) -> str:
        """The environment variable that overrides the setting."""
        return "EMBERLAKE_" + self.setting.replace(".", "_").upper()


def listeners(settings: Settings, components: Collection[str]) -> list[Listener]:
    """The ports the embedded broker (when used) and the named components will listen on."""
    out = []
    if settings.embedded_broker:
        out.append(Listener("kafka.embedded_port", "127.0.0.1", settings.kafka.embedded_port))
    if "receiver" in components:
        receiver = settings.receiver
        out.append(Listener("receiver.grpc_port", receiver.host, receiver.grpc_port))
        out.append(Listener("receiver.http_port", receiver.host, receiver.http_port))
    if "queryd" in components:
        out.append(Listener("queryd.port", settings.queryd.host, settings.queryd.port))
    return out


def in_use(listener: Listener, timeout: float = 0.5) -> bool:
    """Whether something accepts connections on the listener's port already."""
    host = "127.0.0.1" if listener.host in ("", "0.0.0.0", "::") else listener.host
    try:
        with socket.create_connection((host, listener.port), timeout=timeout):
            return True
    except OSError:
        return False


def taken_message(taken: Collection[Listener]) -> str:
    """What to tell the user about ports held by something else."""
    lines = [
        f"port {t.port} ({t.setting}) on {t.host} is already in use; stop what holds it or set "
        f"{t.env} to a free port"
        for t in taken
    ]
    return "\n".join(lines + ["(is another `emberlake up` running with the same settings?)"])
