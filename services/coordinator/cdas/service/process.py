"""A ``cdas serve`` subprocess, started and told apart by its "serving" log line: what the service
benchmark and the tests use to run the service as users do."""

from __future__ import annotations

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


@dataclass
class ServeProcess:
    """A ``cdas serve`` subprocess; ``lines`` collects its JSON log lines."""

    process: subprocess.Popen[str]
    port: int
    grpc_port: int
    lines: list[dict[str, Any]] = field(default_factory=list)
    scheme: str = "http"
    """``https`` when it serves TLS (``--tls-cert``)."""

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

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
    scheme = "http"
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
                scheme = str(entry.get("rest", "http:")).split(":", 1)[0]
                break
    finally:
        timer.cancel()
    if ports is None:
        process.kill()
        raise RuntimeError(f"cdas serve did not start: {lines}")
    served = ServeProcess(process, ports[0], ports[1], lines, scheme)

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
