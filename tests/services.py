"""Real coordinator services for the tests: in this process (a ``Service`` on its own event-loop
thread, real sockets) or as a ``cdas serve`` subprocess (what users run)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import cdas
from cdas.service.process import ServeProcess, serve_process
from cdas.service.server import Bound, Service
from cdas.service.settings import ServiceSettings


@contextmanager
def running_service(
    coordinator: cdas.Coordinator, settings: ServiceSettings | None = None
) -> Iterator[Service]:
    """A started ``Service`` on free ports (REST and gRPC) on a background event loop; stopped
    gracefully at exit. ``service.bound`` holds the ports."""
    settings = settings or ServiceSettings(port=0, grpc_port=0, grace_seconds=2)
    service = Service(coordinator, settings)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(service.start(), loop).result(timeout=30)
    try:
        yield service
    finally:
        asyncio.run_coroutine_threadsafe(service.stop(), loop).result(timeout=60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


def rest_url(bound: Bound | None) -> str:
    assert bound is not None
    return f"http://127.0.0.1:{bound.port}"


def grpc_target(bound: Bound | None) -> str:
    assert bound is not None
    return f"127.0.0.1:{bound.grpc_port}"


__all__ = ["ServeProcess", "grpc_target", "rest_url", "running_service", "serve_process"]
