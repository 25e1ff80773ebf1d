"""The service on its own event loop in a daemon thread, for programs that serve while they do
something else in the main thread (``cdas demo``): the main thread keeps Ctrl-C and signals."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from prometheus_client import CollectorRegistry

from cdas.coordinator import Coordinator
from cdas.service.server import Bound, Service
from cdas.service.settings import ServiceSettings


class BackgroundService:
    """``start()`` returns where it listens; ``stop()`` drains and closes as ``cdas serve``."""

    def __init__(
        self,
        coordinator: Coordinator,
        settings: ServiceSettings,
        on_close: Callable[[], None] | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.service = Service(coordinator, settings, on_close, registry)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._serve, name="cdas-service", daemon=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def start(self, timeout: float = 30.0) -> Bound:
        self.thread.start()
        return asyncio.run_coroutine_threadsafe(self.service.start(), self.loop).result(timeout)

    def stop(self, timeout: float = 60.0) -> None:
        if not self.thread.is_alive():
            return
        try:
            asyncio.run_coroutine_threadsafe(self.service.stop(), self.loop).result(timeout)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout)
