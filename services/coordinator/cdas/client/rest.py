"""The REST clients (httpx): ``RestClient`` (sync) and ``AsyncRestClient`` (asyncio).

Both take an injectable ``transport`` (an ``httpx`` transport: an ASGI app in process, a mock, a
proxy) or a ready ``client``. Errors come back as the library's typed errors, decoded from the
contract's error body; transport failures become ``ServiceUnavailableError`` and are retried by
the ``RetryPolicy``, except a failed TLS handshake (``TlsError``: a certificate not signed by the
``ca`` given, an https URL of a plaintext coordinator), which no retry can fix.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import httpx

from cdas.client import calls
from cdas.client.calls import Call
from cdas.client.retry import NotSentError, RetryPolicy
from cdas.client.tls import PLAINTEXT_HINT, TlsError, from_ssl_error, ssl_context
from cdas.core.errors import (
    CdasError,
    InternalError,
    PayloadTooLargeError,
    ServiceUnavailableError,
    from_code,
)
from cdas.core.requests import DEFAULT_PAGE, Paging, check_export_request
from cdas.core.results import Result
from cdas.core.views import (
    Advance,
    Batch,
    PromptInfo,
    PromptPage,
    ReportOutcome,
    RunInfo,
    RunState,
)

T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 60.0


def _headers(token: str | None) -> dict[str, str]:
    headers = {"user-agent": "cdas-sdk"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    return headers


def _request_kwargs(call: Call[Any]) -> dict[str, Any]:
    if call.content is not None:
        return {"content": call.content, "headers": {"content-type": "application/octet-stream"}}
    if call.json is not None:
        body = json.dumps(call.json, separators=(",", ":")).encode()
        return {"content": body, "headers": {"content-type": "application/json"}}
    return {}


def _answer(call: Call[T], response: httpx.Response) -> T:
    """The call's value, or raise the typed error the server reported."""
    status = response.status_code
    if 200 <= status < 300:
        return call.decode(status, response.content if call.raw else response.json())
    try:
        body = response.json()["error"]
        error = from_code(body["code"], body["message"], body.get("details") or {})
    except (ValueError, KeyError, TypeError):
        error = None
    if error is not None:
        raise error
    text = response.text[:200]
    if status in (502, 503, 504):
        raise ServiceUnavailableError(
            f"coordinator unavailable: HTTP {status}: {text}", status=status
        )
    if status == 413:
        raise PayloadTooLargeError(f"request too large: HTTP 413: {text}", status=status)
    raise InternalError(f"HTTP {status}: {text}", status=status)


def _verify(ca: str | None) -> ssl.SSLContext | bool:
    """httpx's ``verify``: only the CA bundle ``ca`` when given, else httpx's default roots."""
    return ssl_context(ca) if ca else True


def _transport_error(
    exc: httpx.TransportError, url: httpx.URL, ca: str | None
) -> ServiceUnavailableError | TlsError:
    tls = from_ssl_error(exc, str(url), ca)
    if tls is not None:
        return tls
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return NotSentError(f"coordinator unreachable: {exc!r}")
    hint = f" {PLAINTEXT_HINT}" if url.scheme == "http" and "without sending" in str(exc) else ""
    return ServiceUnavailableError(f"coordinator did not answer: {exc!r}{hint}")


class RestClient:
    """The library's methods over REST, synchronously (one ``httpx.Client``, thread-safe)."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        token: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        client: httpx.Client | None = None,
        ca: str | None = None,
    ) -> None:
        """``ca``: the PEM bundle that signs an https coordinator's certificate (a private CA);
        None trusts httpx's default roots. Ignored with a ready ``client`` (it has its own)."""
        self.retry = retry or RetryPolicy()
        self._ca = ca
        self._http = client or httpx.Client(
            base_url=url,
            transport=transport,
            timeout=timeout,
            headers=_headers(token),
            verify=_verify(ca),
        )
        if client is not None:
            self._http.headers.update(_headers(token))

    def _do(self, call: Call[T]) -> T:
        attempt, started = 0, time.monotonic()
        while True:
            attempt += 1
            try:
                try:
                    response = self._http.request(call.method, call.path, **_request_kwargs(call))
                except httpx.TransportError as exc:
                    raise _transport_error(exc, self._http.base_url, self._ca) from exc
                return _answer(call, response)
            except CdasError as error:
                if not self.retry.should_retry(
                    error, attempt, call.idempotent, time.monotonic() - started
                ):
                    raise
                time.sleep(self.retry.delay(attempt))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RestClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # the library's methods (cdas.Coordinator)
    def put_run(
        self,
        run_id: str,
        strategy: str = "cdas",
        params: Mapping[str, Any] | None = None,
        seed: int = 0,
        prompts: int | Sequence[str] | Mapping[str, Any] | None = None,
        labels: Mapping[str, float] | Sequence[float] | None = None,
    ) -> RunInfo:
        return self._do(calls.put_run(run_id, strategy, params, seed, prompts, labels))

    def get_run(self, run_id: str) -> RunInfo:
        return self._do(calls.get_run(run_id))

    def list_runs(self) -> list[RunInfo]:
        return self._do(calls.list_runs())

    def delete_run(self, run_id: str) -> RunInfo:
        return self._do(calls.delete_run(run_id))

    def add_prompts(
        self,
        run_id: str,
        ids: int | Sequence[str] | Mapping[str, Any],
        labels: Mapping[str, float] | Sequence[float] | None = None,
    ) -> int:
        return self._do(calls.add_prompts(run_id, ids, labels))

    def next_batch(self, run_id: str, step: int, size: int, round: int = 0) -> Batch:
        return self._do(calls.next_batch(run_id, step, size, round))

    def report_results(
        self, run_id: str, step: int, results: Iterable[Mapping[str, Any] | Result]
    ) -> ReportOutcome:
        return self._do(calls.report_results(run_id, step, results))

    def advance(
        self, run_id: str, step: int, results: Iterable[Mapping[str, Any] | Result], size: int
    ) -> Advance:
        return self._do(calls.advance(run_id, step, results, size))

    def get_prompt(self, run_id: str, prompt_id: str) -> PromptInfo:
        return self._do(calls.get_prompt(run_id, prompt_id))

    def get_state(self, run_id: str, frontier: int = 0, history_from: int = 0) -> RunState:
        return self._do(calls.get_state(run_id, frontier, history_from))

    def prompt_page(self, run_id: str, start: int = 0, limit: int = DEFAULT_PAGE) -> PromptPage:
        return self._do(calls.prompt_page(run_id, start, limit))

    def export_prompts(
        self,
        run_id: str,
        page_size: int = DEFAULT_PAGE,
        start: int = 0,
        limit: int | None = None,
    ) -> Iterator[PromptPage]:
        """The difficulty export as pages, one GET each (each retried on its own); the first
        is read now, the others as they are iterated (``Coordinator.export_prompts``)."""
        check_export_request(run_id, page_size, start, limit)
        paging = Paging(page_size, start, limit)
        return paging.pages(lambda at, count: self._do(calls.prompt_page(run_id, at, count)))

    def snapshot(self, run_id: str) -> bytes:
        return self._do(calls.snapshot(run_id))

    def restore(self, run_id: str, data: bytes) -> RunInfo:
        return self._do(calls.restore(run_id, data))


class AsyncRestClient:
    """The library's methods over REST for asyncio code (``await client.next_batch(...)``)."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        token: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        client: httpx.AsyncClient | None = None,
        ca: str | None = None,
    ) -> None:
        """``ca``: the PEM bundle that signs an https coordinator's certificate (a private CA);
        None trusts httpx's default roots. Ignored with a ready ``client`` (it has its own)."""
        self.retry = retry or RetryPolicy()
        self._ca = ca
        self._http = client or httpx.AsyncClient(
            base_url=url,
            transport=transport,
            timeout=timeout,
            headers=_headers(token),
            verify=_verify(ca),
        )
        if client is not None:
            self._http.headers.update(_headers(token))

    async def _do(self, call: Call[T]) -> T:
        attempt, started = 0, time.monotonic()
        while True:
            attempt += 1
            try:
                try:
                    response = await self._http.request(
                        call.method, call.path, **_request_kwargs(call)
                    )
                except httpx.TransportError as exc:
                    raise _transport_error(exc, self._http.base_url, self._ca) from exc
                return _answer(call, response)
            except CdasError as error:
                if not self.retry.should_retry(
                    error, attempt, call.idempotent, time.monotonic() - started
                ):
                    raise
                await asyncio.sleep(self.retry.delay(attempt))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncRestClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def put_run(
        self,
        run_id: str,
        strategy: str = "cdas",
        params: Mapping[str, Any] | None = None,
        seed: int = 0,
        prompts: int | Sequence[str] | Mapping[str, Any] | None = None,
        labels: Mapping[str, float] | Sequence[float] | None = None,
    ) -> RunInfo:
        return await self._do(calls.put_run(run_id, strategy, params, seed, prompts, labels))

    async def get_run(self, run_id: str) -> RunInfo:
        return await self._do(calls.get_run(run_id))

    async def list_runs(self) -> list[RunInfo]:
        return await self._do(calls.list_runs())

    async def delete_run(self, run_id: str) -> RunInfo:
        return await self._do(calls.delete_run(run_id))

    async def add_prompts(
        self,
        run_id: str,
        ids: int | Sequence[str] | Mapping[str, Any],
        labels: Mapping[str, float] | Sequence[float] | None = None,
    ) -> int:
        return await self._do(calls.add_prompts(run_id, ids, labels))

    async def next_batch(self, run_id: str, step: int, size: int, round: int = 0) -> Batch:
        return await self._do(calls.next_batch(run_id, step, size, round))

    async def report_results(
        self, run_id: str, step: int, results: Iterable[Mapping[str, Any] | Result]
    ) -> ReportOutcome:
        return await self._do(calls.report_results(run_id, step, results))

    async def advance(
        self, run_id: str, step: int, results: Iterable[Mapping[str, Any] | Result], size: int
    ) -> Advance:
        return await self._do(calls.advance(run_id, step, results, size))

    async def get_prompt(self, run_id: str, prompt_id: str) -> PromptInfo:
        return await self._do(calls.get_prompt(run_id, prompt_id))

    async def get_state(self, run_id: str, frontier: int = 0, history_from: int = 0) -> RunState:
        return await self._do(calls.get_state(run_id, frontier, history_from))

    async def prompt_page(
        self, run_id: str, start: int = 0, limit: int = DEFAULT_PAGE
    ) -> PromptPage:
        return await self._do(calls.prompt_page(run_id, start, limit))

    async def export_prompts(
        self,
        run_id: str,
        page_size: int = DEFAULT_PAGE,
        start: int = 0,
        limit: int | None = None,
    ) -> AsyncIterator[PromptPage]:
        """The difficulty export as pages (``async for page in client.export_prompts(...)``),
        one GET each, read as they are iterated."""
        check_export_request(run_id, page_size, start, limit)
        paging = Paging(page_size, start, limit)
        span: tuple[int, int] | None = paging.first
        while span is not None:
            page = await self._do(calls.prompt_page(run_id, *span))
            yield page
            span = paging.after(page)

    async def snapshot(self, run_id: str) -> bytes:
        return await self._do(calls.snapshot(run_id))

    async def restore(self, run_id: str, data: bytes) -> RunInfo:
        return await self._do(calls.restore(run_id, data))
