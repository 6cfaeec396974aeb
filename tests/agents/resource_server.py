"""Run the resource API on 127.0.0.1 in a background thread, for tests that call it over HTTP."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from aiohttp import web

from agents.resources.http import resource_app
from agents.resources.store import ResourceStore
from emberlake.tenancy import Authenticator
from tests.conftest import free_port


@contextmanager
def serving(store: ResourceStore, auth: Authenticator | None = None) -> Iterator[str]:
    """Serve the API until the block ends; yields the base URL."""
    auth = auth or Authenticator("default", {})
    port = free_port()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    runner = web.AppRunner(resource_app(store, auth))

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(10), "resource API did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
