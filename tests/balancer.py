"""A small HTTP/1.1 round-robin load balancer for the tests: one URL in front of several
``cdas serve`` processes, as nginx or a cloud load balancer would stand in front of replicas.

Every request (not every connection: client connections stay open across requests) goes to the
next backend in turn, on a fresh upstream connection. A backend that refuses the connection (it
is down) is skipped for the next one (``failovers`` counts these); one that drops a request it
accepted makes the answer a 502, as a real balancer's would be (``bad_gateway`` counts these).

``arm_kill`` makes a crash happen at an exact point: the first request matching a predicate is
sent to the chosen backend and answered by it; then the balancer stops sending that backend new
requests, waits until it has no other request in flight, runs the kill, and closes the client's
connection without the answer. The request was applied but its answer lost, which is the crash
a retry must survive without applying it twice. Nothing else is in flight on the killed backend,
so every other answer stays deterministic.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass

RequestMatch = Callable[[str, str, bytes], bool]
"""(method, path, body) -> whether this is the request to crash on."""


@dataclass
class _KillHook:
    match: RequestMatch
    backend: int
    kill: Callable[[], None]


def _split_head(head: bytes) -> tuple[str, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
    return lines[0], headers


def _join_head(first: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [first, *(f"{name}: {value}" for name, value in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _without(headers: list[tuple[str, str]], *names: str) -> list[tuple[str, str]]:
    return [(n, v) for n, v in headers if n.lower() not in names]


class RoundRobinBalancer:
    """``url`` spreads requests over ``backends`` ((host, port) pairs) in turn."""

    def __init__(self, backends: list[tuple[str, int]]) -> None:
        self.backends = backends
        self.served = [0] * len(backends)
        """answers each backend gave"""
        self.failovers = 0
        self.bad_gateway = 0
        self.killed_at: list[int] | None = None
        """``served`` when the armed kill ran"""
        self.port = 0
        self._next = 0
        self._in_flight = [0] * len(backends)
        self._draining: set[int] = set()
        self._hook: _KillHook | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> RoundRobinBalancer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(timeout=10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> RoundRobinBalancer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def arm_kill(self, match: RequestMatch, backend: int, kill: Callable[[], None]) -> None:
        """Crash ``backend`` (with ``kill``) right after it answered the first request that
        ``match``es; that answer never reaches the client."""
        self._loop.call_soon_threadsafe(setattr, self, "_hook", _KillHook(match, backend, kill))

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._clients):
                writer.transport.abort()
            await self._server.wait_closed()

    def _pick(self) -> list[int]:
        """The backends to try for the next request, in order: the next in turn first."""
        n = len(self.backends)
        start = self._next % n
        self._next += 1
        order = [(start + i) % n for i in range(n)]
        return [i for i in order if i not in self._draining]

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients.add(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                first, headers = _split_head(head)
                lengths = [v for n, v in headers if n.lower() == "content-length"]
                if any(n.lower() == "transfer-encoding" for n, _ in headers):
                    raise AssertionError("the balancer takes Content-Length bodies only")
                body = await reader.readexactly(int(lengths[0])) if lengths else b""
                method, path, _ = first.split(" ", 2)
                hook = self._hook
                if hook is not None and hook.match(method, path, body):
                    self._hook = None
                    await self._crash_after(hook, first, headers, body)
                    writer.transport.abort()
                    return
                answer = await self._forward(self._pick(), first, headers, body)
                writer.write(answer)
                await writer.drain()
        finally:
            self._clients.discard(writer)
            writer.close()

    async def _forward(
        self, order: list[int], first: str, headers: list[tuple[str, str]], body: bytes
    ) -> bytes:
        upstream = _join_head(first, [*_without(headers, "connection"), ("Connection", "close")])
        for backend in order:
            host, port = self.backends[backend]
            self._in_flight[backend] += 1
            try:
                try:
                    up_reader, up_writer = await asyncio.open_connection(host, port)
                except OSError:
                    self.failovers += 1
                    continue
                try:
                    up_writer.write(upstream + body)
                    await up_writer.drain()
                    raw = await up_reader.read()
                finally:
                    up_writer.close()
            except OSError:
                raw = b""
            finally:
                self._in_flight[backend] -= 1
            if b"\r\n\r\n" not in raw:
                self.bad_gateway += 1
                return _bad_gateway(f"backend {backend} dropped the request")
            self.served[backend] += 1
            status, _, rest = raw.partition(b"\r\n\r\n")
            first_line, answer_headers = _split_head(status)
            kept = _without(answer_headers, "connection", "keep-alive")
            return _join_head(first_line, kept) + rest
        self.bad_gateway += 1
        return _bad_gateway("no backend is up")

    async def _crash_after(
        self, hook: _KillHook, first: str, headers: list[tuple[str, str]], body: bytes
    ) -> None:
        """Send the request to the hook's backend, let it answer, then kill that backend once it
        has nothing else in flight (new requests go to the others meanwhile)."""
        answer = await self._forward([hook.backend], first, headers, body)
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        self._draining.add(hook.backend)
        while self._in_flight[hook.backend]:
            await asyncio.sleep(0.002)
        self.killed_at = list(self.served)
        await asyncio.to_thread(hook.kill)
        self._draining.discard(hook.backend)


def _bad_gateway(reason: str) -> bytes:
    text = reason.encode()
    return (
        b"HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain\r\n"
        + f"content-length: {len(text)}\r\n\r\n".encode()
        + text
    )
