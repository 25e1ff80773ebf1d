"""``cdas serve``: REST (uvicorn) and gRPC (grpcio aio) in one process, on one event loop, over one
``Coordinator``, with one ``Metrics`` (in the registry given, or a fresh one) that both doors and
the coordinator report to, exposed at ``GET /metrics``.

Shutdown (SIGTERM or SIGINT) is graceful, in this order:

1. readiness answers 503 and gRPC health NOT_SERVING (load balancers stop routing);
2. after ``drain_seconds``, both listeners stop accepting; calls in flight run to completion
   (up to ``grace_seconds``);
3. the store is closed (the embedded store writes its state file when one is configured).

With ``tls_cert`` and ``tls_key`` both doors serve TLS on their usual ports (REST is HTTPS, gRPC
a secure port) from the same certificate; the files are read and checked before either binds.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import grpc
import uvicorn
from grpc_health.v1.health import aio as health_aio
from prometheus_client import CollectorRegistry

from cdas.coordinator import Coordinator
from cdas.observe.health import Health
from cdas.observe.metrics import Metrics
from cdas.service import grpc_server, logs
from cdas.service.rest.app import create_app
from cdas.service.settings import ServiceSettings, load_tls

HEALTH_POLL_SECONDS = 2.0
"""How often gRPC health follows the store's reachability."""


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: the service owns the process's signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass(frozen=True, slots=True)
class Bound:
    """Where a started service listens (ports resolved when 0 was asked)."""

    host: str
    port: int
    grpc_port: int


class Service:
    """One process's REST and gRPC doors; ``start``, then ``stop`` (or ``run`` for both)."""

    def __init__(
        self,
        coordinator: Coordinator,
        settings: ServiceSettings,
        on_close: Callable[[], None] | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.coordinator = coordinator
        self.settings = settings
        self.health = Health(coordinator.store)
        self.metrics = Metrics(
            registry or CollectorRegistry(), coordinator.store, self.health, settings.run_metrics
        )
        coordinator.observers.append(self.metrics)
        self.executor = ThreadPoolExecutor(settings.threads, thread_name_prefix="cdas-store")
        self.app = create_app(coordinator, settings, self.health, self.metrics)
        self.grpc: grpc.aio.Server | None = None  # made in start(): it binds to the running loop
        self.grpc_health: health_aio.HealthServicer | None = None
        self._on_close = on_close
        self._uvicorn: _Uvicorn | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self.bound: Bound | None = None

    async def start(self) -> Bound:
        s = self.settings
        tls = load_tls(s.tls_cert, s.tls_key)  # before binding: a bad file names its path
        self.grpc, self.grpc_health = grpc_server.create_server(
            self.coordinator, s, self.executor, self.metrics
        )
        if tls is None:
            grpc_port = self.grpc.add_insecure_port(f"{s.host}:{s.grpc_port}")
        else:
            credentials = grpc.ssl_server_credentials([(tls[1], tls[0])])  # (key, chain)
            grpc_port = self.grpc.add_secure_port(f"{s.host}:{s.grpc_port}", credentials)
        await self.grpc.start()
        await grpc_server.set_serving(self.grpc_health, True)
        # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY only on sockets that name it, and
        # without it every answer waits for a delayed ACK (about 40 ms).
        sock = socket.socket(
            socket.AF_INET6 if ":" in s.host else socket.AF_INET,
            socket.SOCK_STREAM,
            socket.IPPROTO_TCP,
        )
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((s.host, s.port))
        config = uvicorn.Config(
            self.app,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=max(1, int(s.grace_seconds)),
            limit_concurrency=None,
            backlog=2048,
            # uvicorn wraps the sockets it is given (``serve(sockets=...)``) in this context too
            ssl_certfile=s.tls_cert if tls else None,
            ssl_keyfile=s.tls_key if tls else None,
        )
        self._uvicorn = _Uvicorn(config)
        self._tasks.append(asyncio.create_task(self._uvicorn.serve(sockets=[sock])))
        while not self._uvicorn.started:
            if self._tasks[0].done():
                self._tasks[0].result()  # raises the startup failure
            await asyncio.sleep(0.01)
        self._tasks.append(asyncio.create_task(self._follow_store()))
        self.bound = Bound(s.host, sock.getsockname()[1], grpc_port)
        logs.log.info(
            "serving",
            extra={
                "rest": f"{'https' if tls else 'http'}://{s.host}:{self.bound.port}",
                "grpc": f"{s.host}:{grpc_port}",
                "port": self.bound.port,
                "grpc_port": grpc_port,
                "store": type(self.coordinator.store).__name__,
                "auth": s.token is not None,
                "tls": tls is not None,
            },
        )
        return self.bound

    async def _follow_store(self) -> None:
        """Keep gRPC health in step with readiness (the store answering, not draining)."""
        loop = asyncio.get_running_loop()
        serving = True
        while True:
            await asyncio.sleep(HEALTH_POLL_SECONDS)
            ready, why = await loop.run_in_executor(self.executor, self.health.readiness)
            if ready != serving and self.grpc_health is not None:
                serving = ready
                await grpc_server.set_serving(self.grpc_health, ready)
                logs.log.warning("readiness changed", extra={"ready": ready, "why": why})

    async def stop(self) -> None:
        s = self.settings
        logs.log.info("draining", extra={"drain_seconds": s.drain_seconds})
        self.health.draining = True
        for task in self._tasks[1:]:
            task.cancel()
        if self.grpc_health is not None:
            await grpc_server.set_serving(self.grpc_health, False)
        if s.drain_seconds > 0:
            await asyncio.sleep(s.drain_seconds)
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True
        stopping = [self.grpc.stop(s.grace_seconds)] if self.grpc is not None else []
        await asyncio.gather(*stopping, *self._tasks[:1])
        self.executor.shutdown(wait=True)
        if self._on_close is not None:
            self._on_close()
        logs.log.info("stopped")

    async def run(self) -> None:
        """Start, serve until SIGTERM or SIGINT, then stop gracefully."""
        await self.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await self.stop()
