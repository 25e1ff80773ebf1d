"""The gRPC client: the library's methods over ``cdas.v1.Coordinator`` (a sync channel).

Errors are decoded from the rich status details into the library's typed errors; UNAVAILABLE
(and a deadline passed) are retried by the ``RetryPolicy`` like the REST client's transport
failures. A failed TLS handshake (a certificate the ``ca`` does not sign, TLS against a
plaintext port) is a ``TlsError`` instead, never retried: it is configuration, not an outage.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar, cast

import grpc

from cdas.client.calls import result_body
from cdas.client.retry import NotSentError, RetryPolicy
from cdas.client.tls import (
    NOT_TLS,
    PLAINTEXT_HINT,
    TlsError,
    certificate_error,
    not_tls_error,
    read_ca,
)
from cdas.core.config import PromptSpec, RunConfig
from cdas.core.errors import CdasError, InternalError, InvalidArgumentError, PayloadTooLargeError
from cdas.core.requests import (
    DEFAULT_PAGE,
    Paging,
    check_advance_request,
    check_batch_request,
    check_export_request,
    check_page_request,
    check_state_request,
)
from cdas.core.results import Result, parse_results
from cdas.core.validate import check_prompt_id, check_run_id, check_step, describe
from cdas.core.views import (
    Advance,
    Batch,
    PromptInfo,
    PromptPage,
    ReportOutcome,
    RunInfo,
    RunState,
)
from cdas.rpc import messages as wire
from cdas.rpc.status import DETAILS_KEY, error_of
from cdas.v1 import coordinator_pb2 as pb
from cdas.v1 import coordinator_pb2_grpc as pb_grpc

T = TypeVar("T")

DEFAULT_TARGET = "127.0.0.1:50051"
MAX_MESSAGE = 256 << 20


_CERTIFICATE = ("CERTIFICATE_VERIFY_FAILED", "PEER CERTIFICATE", "HOSTNAME", "SUBJECT ALT NAME")
"""What gRPC core's UNAVAILABLE details say when the server's certificate was not verified."""


def _tls_error(details: str, target: str, ca: str | None) -> TlsError | None:
    """The ``TlsError`` a failed handshake's details describe (gRPC reports it as UNAVAILABLE,
    like a server that is down), None for any other failure."""
    upper = details.upper()
    if "HANDSHAKE" not in upper and "SSL" not in upper and "TLS" not in upper:
        return None
    if any(word in upper for word in _CERTIFICATE):
        return certificate_error(target, ca, details)
    if any(word in upper for word in NOT_TLS):
        return not_tls_error(target, details)
    return None


def _error(
    exc: grpc.RpcError, target: str = "", ca: str | None = None, tls: bool = False
) -> CdasError:
    """The typed error of a failed call (the stubs raise errors that are also ``grpc.Call``s)."""
    call = cast(grpc.Call, exc)
    code = call.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = call.details() if hasattr(exc, "details") else str(exc)
    metadata = call.trailing_metadata() if hasattr(exc, "trailing_metadata") else ()
    error = error_of(code, details or "", metadata)
    has_details = any(item[0] == DETAILS_KEY for item in metadata or ())
    if not has_details and code == grpc.StatusCode.UNAVAILABLE:
        handshake = _tls_error(details or "", target, ca)
        if handshake is not None:
            return handshake
        if not tls and "socket closed" in (details or "").lower():
            error = type(error)(f"{error.message} {PLAINTEXT_HINT}", **error.details)
    if (
        not has_details
        and code == grpc.StatusCode.UNAVAILABLE
        and "connect" in (details or "").lower()
    ):
        return NotSentError(error.message, **error.details)
    if not has_details and code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return PayloadTooLargeError(error.message, **error.details)
    return error


def _results_fields(results: Iterable[Mapping[str, Any] | Result]) -> dict[str, Any]:
    """A request's results as its fields (``wire.results_fields``: columns when every result is
    correct/total), checked here as the library would (``GrpcClient``'s
    _values_the_wire_cannot_carry; columns carry nothing the wire loses)."""
    if isinstance(results, str | bytes | Mapping):
        raise InvalidArgumentError(
            f"results is {describe(results)}; it must be a list of results",
            field="results",
            value=describe(results),
        )
    plain = [result_body(r) for r in results]
    fields = wire.results_fields(plain)
    if "columns" not in fields:
        parse_results(plain)
    return fields


class GrpcClient:
    """The library's methods over gRPC; ``target`` is ``host:port``.

    _values_the_wire_cannot_carry: proto fields cannot hold everything a Python caller may pass
    (3.0 and 3 are one Struct number, an empty ``rewards`` list looks absent, an int64 has no room
    for 2**64, a map no room for a list of labels), so arguments are checked here first with the
    library's own validators, and the client raises exactly the library's errors. The server
    validates again.
    """

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        token: str | None = None,
        *,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        channel: grpc.Channel | None = None,
        ca: str | None = None,
        tls: bool = False,
    ) -> None:
        """TLS when ``ca`` is given (the PEM bundle that signs the coordinator's certificate) or
        ``tls`` is true (gRPC's default roots); else a plaintext channel. Both are ignored with a
        ready ``channel``."""
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self._target, self._ca, self._tls = target, ca, channel is None and (ca is not None or tls)
        options = [
            ("grpc.max_receive_message_length", MAX_MESSAGE),
            ("grpc.max_send_message_length", MAX_MESSAGE),
        ]
        if channel is not None:
            self._channel = channel
        elif ca is not None or tls:
            roots = read_ca(ca) if ca is not None else None
            credentials = grpc.ssl_channel_credentials(root_certificates=roots)
            self._channel = grpc.secure_channel(target, credentials, options=options)
        else:
            self._channel = grpc.insecure_channel(target, options=options)
        self._stub = pb_grpc.CoordinatorStub(self._channel)  # type: ignore[no-untyped-call]
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()

    def _do(self, fn: Callable[[], T], idempotent: bool = True) -> T:
        attempt, started = 0, time.monotonic()
        while True:
            attempt += 1
            try:
                try:
                    return fn()
                except grpc.RpcError as exc:
                    raise _error(exc, self._target, self._ca, self._tls) from exc
            except CdasError as error:
                if not self.retry.should_retry(
                    error, attempt, idempotent, time.monotonic() - started
                ):
                    raise
                time.sleep(self.retry.delay(attempt))

    def _unary(self, method: Any, request: Any) -> Any:
        return method(request, timeout=self.timeout, metadata=self._metadata)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> GrpcClient:
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
        check_run_id(run_id)
        RunConfig.make(strategy, params, seed)  # see _values_the_wire_cannot_carry
        spec = PromptSpec.parse(prompts, labels)
        request = pb.PutRunRequest(
            run_id=run_id,
            strategy=strategy,
            params=wire.struct_of(params),
            seed=seed,
            prompts=None if prompts is None else wire.prompts_message(spec),
            labels=spec.labels or {},
        )
        answer = self._do(lambda: self._unary(self._stub.PutRun, request))
        return wire.run_view(answer.run, created=answer.created)

    def get_run(self, run_id: str) -> RunInfo:
        request = pb.GetRunRequest(run_id=check_run_id(run_id))
        return wire.run_view(self._do(lambda: self._unary(self._stub.GetRun, request)))

    def list_runs(self) -> list[RunInfo]:
        answer = self._do(lambda: self._unary(self._stub.ListRuns, pb.ListRunsRequest()))
        return [wire.run_view(r) for r in answer.runs]

    def delete_run(self, run_id: str) -> RunInfo:
        request = pb.DeleteRunRequest(run_id=check_run_id(run_id))
        answer = self._do(lambda: self._unary(self._stub.DeleteRun, request), idempotent=False)
        return wire.run_view(answer)

    def add_prompts(
        self,
        run_id: str,
        ids: int | Sequence[str] | Mapping[str, Any],
        labels: Mapping[str, float] | Sequence[float] | None = None,
    ) -> int:
        check_run_id(run_id)
        spec = PromptSpec.parse(ids, labels)
        request = pb.AddPromptsRequest(
            run_id=run_id, prompts=wire.prompts_message(spec), labels=spec.labels or {}
        )
        answer = self._do(lambda: self._unary(self._stub.AddPrompts, request), idempotent=False)
        return int(answer.size)

    def next_batch(self, run_id: str, step: int, size: int, round: int = 0) -> Batch:
        check_batch_request(run_id, step, size, round)
        request = pb.NextBatchRequest(run_id=run_id, step=step, size=size, round=round)
        return wire.batch_view(self._do(lambda: self._unary(self._stub.NextBatch, request)))

    def report_results(
        self, run_id: str, step: int, results: Iterable[Mapping[str, Any] | Result]
    ) -> ReportOutcome:
        check_run_id(run_id)
        check_step(step)
        request = pb.ReportResultsRequest(run_id=run_id, step=step, **_results_fields(results))
        return wire.outcome_view(self._do(lambda: self._unary(self._stub.ReportResults, request)))

    def advance(
        self, run_id: str, step: int, results: Iterable[Mapping[str, Any] | Result], size: int
    ) -> Advance:
        check_advance_request(run_id, step, size)
        fields = _results_fields(results)
        request = pb.AdvanceRequest(run_id=run_id, step=step, size=size, **fields)
        return wire.advance_view(self._do(lambda: self._unary(self._stub.Advance, request)))

    def get_prompt(self, run_id: str, prompt_id: str) -> PromptInfo:
        request = pb.GetPromptRequest(
            run_id=check_run_id(run_id), prompt_id=check_prompt_id(prompt_id)
        )
        return wire.prompt_view(self._do(lambda: self._unary(self._stub.GetPrompt, request)))

    def get_state(self, run_id: str, frontier: int = 0, history_from: int = 0) -> RunState:
        check_state_request(run_id, frontier, history_from)
        request = pb.GetStateRequest(run_id=run_id, frontier=frontier, history_from=history_from)
        return wire.state_view(self._do(lambda: self._unary(self._stub.GetState, request)))

    def prompt_page(self, run_id: str, start: int = 0, limit: int = DEFAULT_PAGE) -> PromptPage:
        check_page_request(run_id, start, limit)
        request = pb.ExportPromptsRequest(run_id=run_id, start=start, page_size=limit, limit=limit)

        def fetch() -> PromptPage:  # a stream of exactly one page: limit = page_size
            pages = self._stub.ExportPrompts(request, timeout=self.timeout, metadata=self._metadata)
            [page] = pages  # read to the end, so the call completes
            return wire.prompt_page_view(page)

        return self._do(fetch)

    def export_prompts(
        self,
        run_id: str,
        page_size: int = DEFAULT_PAGE,
        start: int = 0,
        limit: int | None = None,
    ) -> Iterator[PromptPage]:
        """The difficulty export over one ``ExportPrompts`` stream, a page per message; the
        first is read now, the others as they are iterated. A stream that fails part way (the
        coordinator restarted, the deadline ``timeout`` passed) is reopened at the first page it
        did not deliver, each page with the retry policy's tries, so a long export goes on."""
        check_export_request(run_id, page_size, start, limit)
        paging = Paging(page_size, start, limit)
        open_stream: list[Iterator[pb.PromptPage]] = []

        def read(at: int, _count: int) -> PromptPage:
            def attempt() -> PromptPage:
                if not open_stream:
                    rest = 0 if paging.end is None else paging.end - at
                    request = pb.ExportPromptsRequest(
                        run_id=run_id, start=at, page_size=page_size, limit=rest
                    )
                    call = self._stub.ExportPrompts(
                        request, timeout=self.timeout, metadata=self._metadata
                    )
                    open_stream.append(iter(call))
                try:
                    message = next(open_stream[0], None)
                except BaseException:
                    open_stream.clear()  # reopened where it stopped
                    raise
                if message is None:
                    open_stream.clear()
                    raise InternalError(f"the export stream ended before prompt {at}", start=at)
                return wire.prompt_page_view(message)

            return self._do(attempt)

        return paging.pages(read)

    def snapshot(self, run_id: str) -> bytes:
        request = pb.SnapshotRequest(run_id=check_run_id(run_id))

        def fetch() -> bytes:
            chunks = self._stub.Snapshot(request, timeout=self.timeout, metadata=self._metadata)
            return b"".join(chunk.data for chunk in chunks)

        return self._do(fetch)

    def restore(self, run_id: str, data: bytes) -> RunInfo:
        check_run_id(run_id)

        def chunks() -> Iterator[pb.RestoreChunk]:
            for k, chunk in enumerate(wire.snapshot_chunks(bytes(data))):
                yield pb.RestoreChunk(run_id=run_id if k == 0 else "", data=chunk.data)

        def send() -> Any:
            return self._stub.Restore(chunks(), timeout=self.timeout, metadata=self._metadata)

        return wire.run_view(self._do(send))
