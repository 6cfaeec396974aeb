"""Intake fixtures: a receiver over the session broker, with the test's own topics."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from emberlake.settings import Settings
from ingest.otlp_receiver import ReceiverThread
from tests.ingest.harness import start_receiver


@pytest.fixture
def receiver(settings: Settings) -> Iterator[ReceiverThread]:
    """A receiver with the test's settings, on its own thread, over the session broker."""
    thread = start_receiver(settings)
    yield thread
    thread.stop()
