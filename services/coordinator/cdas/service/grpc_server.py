"""The gRPC front door (grpcio aio): ``cdas.v1.Coordinator`` over one ``Coordinator``, with the
standard health service and server reflection.

Store calls block, so each RPC runs its ``Coordinator`` call on a thread pool and awaits it; the
event loop only moves bytes. A ``CdasError`` aborts the RPC with the error table's code and rich
details (``cdas.rpc.status``). Auth is an interceptor: every method but ``grpc.health.v1`` needs
the bearer token.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import Executor
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

from cdas.coordinator import DEFAULT_PAGE, Coordinator
from cdas.core.errors import CdasError, InternalError, PayloadTooLargeError
from cdas.core.views import PromptPage
from cdas.observe.metrics import Metrics, grpc_operation
from cdas.rpc import messages as wire
from cdas.rpc.status import grpc_code, trailing_metadata
from cdas.service import logs
from cdas.service.access import Access, Grant
from cdas.service.settings import ServiceSettings
from cdas.v1 import coordinator_pb2 as pb
from cdas.v1 import coordinator_pb2_grpc as pb_grpc

SERVICE = pb.DESCRIPTOR.services_by_name["Coordinator"].full_name
HEALTH_PREFIX = "/grpc.health.v1.Health/"

T = TypeVar("T")
Req = TypeVar("Req")
Resp = TypeVar("Resp")


class CoordinatorService(pb_grpc.CoordinatorServicer):
    def __init__(
        self,
        coordinator: Coordinator,
        executor: Executor,
        max_bytes: int,
        metrics: Metrics,
        access: Access | None = None,
    ) -> None:
        self.c = coordinator
        self.executor = executor
        self.max_bytes = max_bytes
        self.metrics = metrics
        self.access = access or Access()

    def _grant(self, context: grpc.aio.ServicerContext[Any, Any]) -> Grant:
        """The call's grant (the interceptor already refused unknown tokens with 401)."""
        header = next(
            (v for k, v in context.invocation_metadata() or () if k == "authorization"), None
        )
        return self.access.identify(header if isinstance(header, str) else None)

    async def _call(
        self,
        context: grpc.aio.ServicerContext[Any, Any],
        name: str,
        fn: Callable[..., T],
        *args: Any,
        on_run: str | None = None,
    ) -> T:
        """Run ``fn(*args)`` on the executor once the call's scopes allow ``name`` on
        ``on_run``; a ``CdasError`` (403 included) aborts the RPC with its code and details."""
        started = time.perf_counter()
        status = "OK"
        code: str | None = None
        try:
            if self.access.enabled:
                self._grant(context).check(grpc_operation(name), on_run)
            return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)
        except CdasError as exc:
            status, code = grpc_code(exc).name, exc.code
            await context.abort(grpc_code(exc), exc.message, trailing_metadata(exc))
            raise  # not reached: abort raises
        except Exception as exc:
            logs.log.exception("unhandled error", extra={"rpc": name})
            error = InternalError(f"internal error: {type(exc).__name__}")
            status, code = "INTERNAL", error.code
            await context.abort(grpc_code(error), error.message, trailing_metadata(error))
            raise
        finally:
            seconds = time.perf_counter() - started
            self.metrics.request("grpc", grpc_operation(name), seconds, code)
            if logs.access.isEnabledFor(20):
                logs.access.info(
                    "grpc",
                    extra={
                        "door": "grpc",
                        "rpc": name,
                        "status": status,
                        "duration_ms": round(seconds * 1e3, 3),
                    },
                )

    async def PutRun(self, request: pb.PutRunRequest, context: Any) -> pb.PutRunResponse:
        run = await self._call(
            context,
            "PutRun",
            lambda: self.c.put_run(
                request.run_id,
                strategy=request.strategy if request.HasField("strategy") else "cdas",
                params=wire.dict_of(request.params),
                seed=request.seed,
                prompts=wire.prompts_value(
                    request.prompts if request.HasField("prompts") else None
                ),
                labels=wire.labels_value(request.labels),
            ),
            on_run=request.run_id,
        )
        return pb.PutRunResponse(run=wire.run_message(run), created=run.created)

    async def GetRun(self, request: pb.GetRunRequest, context: Any) -> pb.Run:
        return wire.run_message(
            await self._call(
                context, "GetRun", self.c.get_run, request.run_id, on_run=request.run_id
            )
        )

    async def ListRuns(self, request: pb.ListRunsRequest, context: Any) -> pb.ListRunsResponse:
        runs = await self._call(context, "ListRuns", self.c.list_runs)
        grant = self._grant(context)
        return pb.ListRunsResponse(runs=[wire.run_message(r) for r in runs if grant.sees(r.run_id)])

    async def DeleteRun(self, request: pb.DeleteRunRequest, context: Any) -> pb.Run:
        run = await self._call(
            context, "DeleteRun", self.c.delete_run, request.run_id, on_run=request.run_id
        )
        return wire.run_message(run)

    async def AddPrompts(
        self, request: pb.AddPromptsRequest, context: Any
    ) -> pb.AddPromptsResponse:
        prompts = wire.prompts_value(request.prompts if request.HasField("prompts") else None)
        size = await self._call(
            context,
            "AddPrompts",
            lambda: self.c.add_prompts(
                request.run_id,
                prompts,  # type: ignore[arg-type]  # None: the library names what is missing
                wire.labels_value(request.labels),
            ),
            on_run=request.run_id,
        )
        return pb.AddPromptsResponse(size=size)

    async def NextBatch(self, request: pb.NextBatchRequest, context: Any) -> pb.Batch:
        batch = await self._call(
            context,
            "NextBatch",
            self.c.next_batch,
            request.run_id,
            request.step,
            request.size,
            request.round,
            on_run=request.run_id,
        )
        return wire.batch_message(batch)

    async def ReportResults(
        self, request: pb.ReportResultsRequest, context: Any
    ) -> pb.ReportResultsResponse:
        outcome = await self._call(
            context,
            "ReportResults",
            lambda: self.c.report_results(
                request.run_id, request.step, wire.results_value(request)
            ),
            on_run=request.run_id,
        )
        return wire.outcome_message(outcome)

    async def Advance(self, request: pb.AdvanceRequest, context: Any) -> pb.AdvanceResponse:
        advance = await self._call(
            context,
            "Advance",
            lambda: self.c.advance(
                request.run_id, request.step, wire.results_value(request), request.size
            ),
            on_run=request.run_id,
        )
        return wire.advance_message(advance)

    async def GetPrompt(self, request: pb.GetPromptRequest, context: Any) -> pb.Prompt:
        prompt = await self._call(
            context,
            "GetPrompt",
            self.c.get_prompt,
            request.run_id,
            request.prompt_id,
            on_run=request.run_id,
        )
        return wire.prompt_message(prompt)

    async def GetState(self, request: pb.GetStateRequest, context: Any) -> pb.RunState:
        return wire.state_message(
            await self._call(
                context,
                "GetState",
                self.c.get_state,
                request.run_id,
                request.frontier,
                request.history_from,
                on_run=request.run_id,
            )
        )

    async def Snapshot(
        self, request: pb.SnapshotRequest, context: Any
    ) -> AsyncIterator[pb.SnapshotChunk]:
        data = await self._call(
            context, "Snapshot", self.c.snapshot, request.run_id, on_run=request.run_id
        )
        for chunk in wire.snapshot_chunks(data):
            yield chunk

    async def ExportPrompts(
        self, request: pb.ExportPromptsRequest, context: Any
    ) -> AsyncIterator[pb.PromptPage]:
        """The difficulty export, one page per message, each read (and converted) on the
        executor only when the previous one was sent, so a stream of 10^7 prompts holds about
        one page in memory. The first page goes through ``_call`` (scopes, argument checks, an
        unknown run: the usual errors and metrics); a later page's failure (the run deleted
        meanwhile, the store unreachable) aborts the stream with its code."""
        pages = await self._call(
            context,
            "ExportPrompts",
            lambda: self.c.export_prompts(
                request.run_id,
                request.page_size or DEFAULT_PAGE,
                request.start,
                request.limit or None,
            ),
            on_run=request.run_id,
        )
        loop = asyncio.get_running_loop()
        while True:
            try:
                message = await loop.run_in_executor(self.executor, _next_page_message, pages)
            except CdasError as exc:
                logs.log.warning("export stopped", extra={"rpc": "ExportPrompts", "code": exc.code})
                await context.abort(grpc_code(exc), exc.message, trailing_metadata(exc))
            except Exception as exc:
                logs.log.exception("unhandled error", extra={"rpc": "ExportPrompts"})
                error = InternalError(f"internal error: {type(exc).__name__}")
                await context.abort(grpc_code(error), error.message, trailing_metadata(error))
            if message is None:
                return
            yield message

    async def Restore(
        self, request_iterator: AsyncIterator[pb.RestoreChunk], context: Any
    ) -> pb.Run:
        run_id: str | None = None
        parts: list[bytes] = []
        size = 0
        async for chunk in request_iterator:
            if run_id is None:
                run_id = chunk.run_id
                if self.access.enabled:  # refused before the rest of the stream is read
                    try:
                        self._grant(context).check("restore", run_id)
                    except CdasError as denied:
                        self.metrics.request("grpc", "restore", 0.0, denied.code)
                        await context.abort(
                            grpc_code(denied), denied.message, trailing_metadata(denied)
                        )
            parts.append(chunk.data)
            size += len(chunk.data)
            if size > self.max_bytes:
                error = PayloadTooLargeError(
                    f"snapshot of over {self.max_bytes} bytes is over the limit",
                    limit=self.max_bytes,
                )
                self.metrics.request("grpc", "restore", 0.0, error.code)
                await context.abort(grpc_code(error), error.message, trailing_metadata(error))
        data = b"".join(parts)
        run = await self._call(
            context, "Restore", self.c.restore, run_id or "", data, on_run=run_id or ""
        )
        return wire.run_message(run)


def _next_page_message(pages: Iterator[PromptPage]) -> pb.PromptPage | None:
    page = next(pages, None)
    return None if page is None else wire.prompt_page_message(page)


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Refuse calls without the bearer token (health stays open), with UNAUTHENTICATED and the
    same rich details as every other error."""

    def __init__(self, access: Access, metrics: Metrics) -> None:
        self.access = access
        self.metrics = metrics

    async def intercept_service(  # type: ignore[override]
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(details)
        if not self.access.enabled or details.method.startswith(HEALTH_PREFIX) or handler is None:
            return handler
        header = next(
            (v for k, v in details.invocation_metadata or () if k == "authorization"), None
        )
        try:
            self.access.identify(header if isinstance(header, str) else None)
        except CdasError as exc:
            self.metrics.request("grpc", grpc_operation(details.method), 0.0, exc.code)
            return _refusal(handler, exc)
        return handler


def _refusal(handler: Any, error: CdasError) -> grpc.RpcMethodHandler[Any, Any]:
    async def refuse(request: Any, context: Any) -> None:
        await context.abort(grpc_code(error), error.message, trailing_metadata(error))

    kwargs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(refuse, **kwargs)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(refuse, **kwargs)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(refuse, **kwargs)
    return grpc.unary_unary_rpc_method_handler(refuse, **kwargs)


def create_server(
    coordinator: Coordinator, settings: ServiceSettings, executor: Executor, metrics: Metrics
) -> tuple[grpc.aio.Server, health_aio.HealthServicer]:
    """An unstarted aio server with the coordinator, health (SERVING) and reflection; requests
    are counted in ``metrics``."""
    options = [
        ("grpc.max_receive_message_length", settings.max_body_bytes),
        ("grpc.max_send_message_length", settings.max_body_bytes),
        ("grpc.so_reuseport", 0),
    ]
    access = settings.access()
    server = grpc.aio.server(interceptors=[AuthInterceptor(access, metrics)], options=options)
    service = CoordinatorService(coordinator, executor, settings.max_body_bytes, metrics, access)
    pb_grpc.add_CoordinatorServicer_to_server(service, server)  # type: ignore[no-untyped-call]
    health_servicer = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (
            SERVICE,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    return server, health_servicer


async def set_serving(health_servicer: health_aio.HealthServicer, serving: bool) -> None:
    status = (
        health_pb2.HealthCheckResponse.SERVING
        if serving
        else health_pb2.HealthCheckResponse.NOT_SERVING
    )
    for name in ("", SERVICE):
        await health_servicer.set(name, status)
