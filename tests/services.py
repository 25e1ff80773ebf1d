"""Real coordinator services for the tests: in this process (a ``Service`` on its own event-loop
thread, real sockets) or as a ``cdas serve`` subprocess (what users run)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import cdas
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


@dataclass
class ServeProcess:
    """A ``cdas serve`` subprocess; ``lines`` collects its JSON log lines."""

    process: subprocess.Popen[str]
    port: int
    grpc_port: int
    lines: list[dict[str, Any]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def terminate(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=timeout)


@contextmanager
def serve_process(
    *args: str, env: dict[str, str] | None = None, timeout: float = 30
) -> Iterator[ServeProcess]:
    """``cdas serve --port 0 --grpc-port 0 *args``, started and parsed from its "serving" log
    line; terminated (SIGTERM) at exit."""
    command = [sys.executable, "-m", "cdas.cli", "serve", "--port", "0", "--grpc-port", "0", *args]
    environ = dict(os.environ, PYTHONUNBUFFERED="1")
    environ.pop("CDAS_API_TOKEN", None)
    environ.update(env or {})
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=environ)
    assert process.stderr is not None
    lines: list[dict[str, Any]] = []
    ports: tuple[int, int] | None = None
    timer = threading.Timer(timeout, process.kill)
    timer.start()
    try:
        for line in process.stderr:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            lines.append(entry)
            if entry.get("msg") == "serving":
                ports = (int(entry["port"]), int(entry["grpc_port"]))
                break
    finally:
        timer.cancel()
    if ports is None:
        process.kill()
        raise RuntimeError(f"cdas serve did not start: {lines}")
    served = ServeProcess(process, ports[0], ports[1], lines)

    def collect() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            try:
                lines.append(json.loads(line))
            except ValueError:
                lines.append({"raw": line})

    reader = threading.Thread(target=collect, daemon=True)
    reader.start()
    try:
        yield served
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        reader.join(timeout=5)
