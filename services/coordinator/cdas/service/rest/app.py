"""The REST front door: every endpoint of ``shared/API.md``, and the one-call step
(``POST /v1/runs/{run_id}/advance``), over one ``Coordinator``.

Endpoints are plain ``def``s: the stores block (Redis I/O, the embedded store's locks), so
Starlette runs them on its worker threads. Answers are the views' ``to_dict()`` written with
``json.dumps`` straight into the response (no per-field re-validation; a batch of 1024 ids costs
about 0.1 ms). Every error, including FastAPI's own validation and routing errors, leaves as the
contract's body ``{"error": {"code", "message", "details"}}`` with the status of the error table.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRouter
from prometheus_client import CollectorRegistry
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import StreamingResponse
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import cdas
from cdas.coordinator import DEFAULT_PAGE, Coordinator
from cdas.core.errors import (
    CdasError,
    InternalError,
    InvalidArgumentError,
    MethodNotAllowedError,
    NotFoundError,
    PayloadTooLargeError,
    UnauthenticatedError,
    http_status,
)
from cdas.core.strategies.base import DEFAULT_STRATEGY
from cdas.export import csv_text
from cdas.observe import assets
from cdas.observe.health import Health
from cdas.observe.metrics import OPERATIONS, Metrics
from cdas.service import logs
from cdas.service.access import METRICS, Grant
from cdas.service.rest import models
from cdas.service.rest.bodies import JSON, OCTETS, JsonBody, require_media_type, validation_error
from cdas.service.rest.openapi import state_rules
from cdas.service.settings import ServiceSettings

CSV = "text/csv"

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": models.ErrorBody, "description": why}
    for status, why in (
        (401, "missing or wrong bearer token"),
        (403, "the token's scopes do not cover this operation on this run"),
        (404, "unknown run or prompt"),
        (409, "conflict with the run's state"),
        (413, "request body too large"),
        (415, "the body's Content-Type is not the endpoint's (JSON, or the snapshot's binary)"),
        (422, "invalid input; the message names the value"),
        (503, "store unreachable; retry"),
    )
}


def _json(data: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(data, separators=(",", ":"), allow_nan=False), status, media_type=JSON
    )


_PUT_RUN_BODY = JsonBody(models.PutRunBody)
_ADD_PROMPTS_BODY = JsonBody(models.AddPromptsBody)
_BATCH_BODY = JsonBody(models.NextBatchBody)
_REPORT_BODY = JsonBody(models.ReportBody)
_ADVANCE_BODY = JsonBody(models.AdvanceBody)
_BODIES = (_PUT_RUN_BODY, _ADD_PROMPTS_BODY, _BATCH_BODY, _REPORT_BODY, _ADVANCE_BODY)


ERROR_CODE = "cdas.error"
"""Where an error answer leaves its code in the ASGI scope, for the request metrics."""


HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(app: FastAPI, scope: Scope) -> list[str]:
    """Every method some route of ``app`` fully matches on the request's path (Starlette's own
    405 names only the first route whose path matched, and ``/v1/runs/{id}`` is three routes).
    O(methods x routes), on 405s only."""
    return [
        method
        for method in HTTP_METHODS
        if any(
            route.matches({**scope, "method": method})[0] == Match.FULL
            for route in app.router.routes
        )
    ]


def error_response(error: CdasError, scope: Scope | None = None) -> Response:
    """The contract's error answer; with the request's ``scope``, also noted for the metrics."""
    if scope is not None:
        scope[ERROR_CODE] = error.code
    return _json(error.to_dict(), http_status(error))


class RequestObserver:
    """ASGI middleware, the outermost: per request, one structured access-log line (method,
    path, status, duration_ms) and, for the API's operations, the request metrics (latency per
    operation; errors by the code the error answer left in the scope, ``internal`` for a crash).
    Plain ASGI, not ``BaseHTTPMiddleware``, which costs about a millisecond a request."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            scope[ERROR_CODE] = InternalError.code
            raise
        finally:
            seconds = time.perf_counter() - started
            self._count(scope, status, seconds)
            if logs.access.isEnabledFor(logging.INFO):
                logs.access.info(
                    "rest",
                    extra={
                        "door": "rest",
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "duration_ms": round(seconds * 1e3, 3),
                    },
                )

    def _count(self, scope: Scope, status: int, seconds: float) -> None:
        route = scope.get("route")
        name = getattr(route, "name", None)
        if scope["method"] not in getattr(route, "methods", ()):
            name = None  # a 405: the path matched this route, the method did not
        if name in OPERATIONS:
            operation = str(name)
        elif scope["path"].startswith("/v1/"):
            operation = "unknown"  # refused before routing (413), or no such endpoint
        else:
            return  # the page, /metrics, health, docs: not API operations
        code = scope.get(ERROR_CODE)
        if code is None and status >= 400:
            code = InternalError.code
        self.metrics.request("rest", operation, seconds, code)


class BodyLimit:
    """ASGI middleware: refuse bodies over ``limit`` bytes with 413 before the app sees them.

    By Content-Length up front; a body without one (chunked) is read here, counting, and handed
    to the app whole once it is known to fit. Nothing is applied for a refused request."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        length = next((v for k, v in scope.get("headers", ()) if k == b"content-length"), None)
        if length is not None and length.isdigit():
            if int(length) > self.limit:
                await error_response(self._error(int(length)), scope)(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break  # the client went away: nothing to do
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                await error_response(self._error(size), scope)(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _error(self, size: int) -> PayloadTooLargeError:
        return PayloadTooLargeError(
            f"request body of {size} bytes is over the limit of {self.limit} bytes; "
            "register large prompt sets in chunks",
            size=size,
            limit=self.limit,
        )


def create_app(
    coordinator: Coordinator,
    settings: ServiceSettings | None = None,
    health: Health | None = None,
    metrics: Metrics | None = None,
) -> FastAPI:
    """The REST app over ``coordinator`` (token and body limit from ``settings``). Without
    ``metrics`` it makes its own, in a registry of its own, observing ``coordinator``."""
    settings = settings or ServiceSettings()
    health = health or Health(coordinator.store)
    if metrics is None:
        metrics = Metrics(CollectorRegistry(), coordinator.store, health, settings.run_metrics)
        coordinator.observers.append(metrics)
    access = settings.access()
    app = FastAPI(
        title="cdas coordinator",
        version=cdas.__version__,
        description="Competence-Difficulty Alignment Sampling and the baselines, for RL training "
        "of LLMs: trainers ask for each step's prompts and post back pass rates.",
    )
    app.state.coordinator = coordinator
    app.state.health = health
    app.state.metrics = metrics

    @app.exception_handler(CdasError)
    async def on_cdas_error(request: Request, exc: CdasError) -> Response:
        return error_response(exc, request.scope)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError) -> Response:
        return error_response(validation_error(exc.errors()), request.scope)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if request.url.path.startswith("/v1") and exc.status_code in (404, 405):
            try:  # auth before routing: without the token, /v1's routes cannot be probed
                access.identify(request.headers.get("authorization"))
            except UnauthenticatedError as denied:
                return error_response(denied, request.scope)
        if exc.status_code == 404:
            error: CdasError = NotFoundError(
                f"no endpoint {request.method} {request.url.path}", path=request.url.path
            )
        elif exc.status_code == 405:
            allowed = ", ".join(allowed_methods(app, request.scope))
            error = MethodNotAllowedError(
                f"{request.method} is not offered on {request.url.path}"
                + (f"; it offers {allowed}" if allowed else ""),
                method=request.method,
                path=request.url.path,
            )
            answer = error_response(error, request.scope)
            if allowed:
                answer.headers["Allow"] = allowed  # RFC 9110: a 405 names what is allowed
            return answer
        elif exc.status_code == 400:  # FastAPI: a body it cannot decode (not UTF-8, say)
            error = InvalidArgumentError(
                f"request body cannot be read: {exc.detail}; send UTF-8 JSON", field="body"
            )
        else:
            error = InvalidArgumentError(str(exc.detail), status=exc.status_code)
            request.scope[ERROR_CODE] = error.code
            return _json(error.to_dict(), exc.status_code)
        return error_response(error, request.scope)

    @app.exception_handler(Exception)
    async def on_bug(request: Request, exc: Exception) -> Response:
        logs.log.exception("unhandled error", extra={"path": request.url.path})
        return error_response(InternalError(f"internal error: {type(exc).__name__}"), request.scope)

    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(RequestObserver, metrics=metrics)

    def authorized(request: Request) -> Grant:
        """Identify the token (401), then check its scopes cover this operation on this run
        (403): before the body is read, so a refused call costs nothing and changes nothing."""
        grant = access.identify(request.headers.get("authorization"))
        operation = getattr(request.scope.get("route"), "name", "")
        grant.check(operation, request.path_params.get("run_id"))
        request.state.grant = grant
        return grant

    v1 = APIRouter(prefix="/v1", dependencies=[Depends(authorized)], responses=_ERRORS)
    c = coordinator

    @v1.put(
        "/runs/{run_id}",
        response_model=models.Run,
        status_code=201,
        responses={200: {"model": models.Run, "description": "the same run already exists"}},
        openapi_extra=_PUT_RUN_BODY.openapi(),
        summary="Create a run (201), or find the same one (200)",
    )
    async def put_run(run_id: str, request: Request) -> Response:
        body = _PUT_RUN_BODY.parse(await request.body(), request.headers.get("content-type"))
        run = await run_in_threadpool(
            lambda: c.put_run(
                run_id,
                strategy=body.get("strategy", DEFAULT_STRATEGY),
                params=body.get("params"),
                seed=body.get("seed", 0),
                prompts=body.get("prompts"),
                labels=body.get("labels"),
            )
        )
        return _json(run.to_dict(), 201 if run.created else 200)

    @v1.get("/runs", response_model=models.RunList, summary="Every run")
    def list_runs(request: Request) -> Response:
        grant: Grant = request.state.grant
        return _json({"runs": [r.to_dict() for r in c.list_runs() if grant.sees(r.run_id)]})

    @v1.get("/runs/{run_id}", response_model=models.Run, summary="One run")
    def get_run(run_id: str) -> Response:
        return _json(c.get_run(run_id).to_dict())

    @v1.delete("/runs/{run_id}", response_model=models.Run, summary="Delete a run (answers it)")
    def delete_run(run_id: str) -> Response:
        return _json(c.delete_run(run_id).to_dict())

    @v1.post(
        "/runs/{run_id}/prompts",
        response_model=models.Size,
        openapi_extra=_ADD_PROMPTS_BODY.openapi(),
        summary="Append prompts",
    )
    async def add_prompts(run_id: str, request: Request) -> Response:
        body = _ADD_PROMPTS_BODY.parse(await request.body(), request.headers.get("content-type"))
        prompts: dict[str, Any] = {k: v for k, v in body.items() if k in ("ids", "count")}
        size = await run_in_threadpool(c.add_prompts, run_id, prompts, body.get("labels"))
        return _json({"size": size})

    @v1.post(
        "/runs/{run_id}/batches",
        response_model=models.Batch,
        openapi_extra=_BATCH_BODY.openapi(),
        summary="The prompts of (step, round); the same answer for the same request",
    )
    async def next_batch(run_id: str, request: Request) -> Response:
        body = _BATCH_BODY.parse(await request.body(), request.headers.get("content-type"))
        batch = await run_in_threadpool(
            c.next_batch, run_id, body["step"], body["size"], body.get("round", 0)
        )
        return _json(batch.to_dict())

    @v1.post(
        "/runs/{run_id}/results",
        response_model=models.ReportResultsAnswer,
        openapi_extra=_REPORT_BODY.openapi(),
        summary="Post a step's group results; each (step, prompt) is applied at most once",
    )
    async def report_results(run_id: str, request: Request) -> Response:
        body = _REPORT_BODY.parse(await request.body(), request.headers.get("content-type"))
        outcome = await run_in_threadpool(c.report_results, run_id, body["step"], body["results"])
        return _json(outcome.to_dict())

    @v1.post(
        "/runs/{run_id}/advance",
        response_model=models.Advance,
        openapi_extra=_ADVANCE_BODY.openapi(),
        summary="The one-call step: post step n's results and get step n + 1's batch (round 0), "
        "atomically; what the two calls would answer",
    )
    async def advance(run_id: str, request: Request) -> Response:
        body = _ADVANCE_BODY.parse(await request.body(), request.headers.get("content-type"))
        answer = await run_in_threadpool(
            c.advance, run_id, body["step"], body["results"], body["size"]
        )
        return _json(answer.to_dict())

    @v1.get(
        "/runs/{run_id}/prompts",
        response_model=models.PromptPage,
        responses={
            200: {
                "content": {CSV: {"schema": {"type": "string"}}},
                "description": "a page of prompts as columns (JSON); or, asked for CSV, every "
                "prompt from start (at most limit of them), streamed",
            }
        },
        summary="The difficulty export: each prompt's difficulty, updates and last result",
        name="export_prompts",
    )
    def export_prompts(
        run_id: str,
        request: Request,
        start: int = 0,
        limit: int | None = None,
        fmt: Annotated[Literal["json", "csv"] | None, Query(alias="format")] = None,
    ) -> Response:
        """JSON: one page (``limit`` <= 100000, default 10000); follow ``next``. CSV
        (``?format=csv`` or ``Accept: text/csv``): the whole run from ``start`` (or ``limit``
        prompts), read page by page as it is sent, so a curl of 10^7 prompts holds one page in
        memory. A failure mid-stream cuts the response short (the transfer is incomplete)."""
        if fmt != "csv" and (fmt == "json" or CSV not in request.headers.get("accept", "")):
            page = c.prompt_page(run_id, start, DEFAULT_PAGE if limit is None else limit)
            return _json(page.to_dict())
        pages = c.export_prompts(run_id, DEFAULT_PAGE, start, limit)  # checks and reads page 1
        return StreamingResponse(
            (csv_text(page, header=k == 0) for k, page in enumerate(pages)),
            media_type=f"{CSV}; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{run_id}.csv"'},
        )

    @v1.get(
        "/runs/{run_id}/prompts/{prompt_id:path}",
        response_model=models.Prompt,
        summary="One prompt's difficulty and last result",
    )
    def get_prompt(run_id: str, prompt_id: str) -> Response:
        return _json(c.get_prompt(run_id, prompt_id).to_dict())

    @v1.get("/runs/{run_id}/state", response_model=models.RunState, summary="Dashboard state")
    def get_state(run_id: str, frontier: int = 0, history_from: int = 0) -> Response:
        return _json(c.get_state(run_id, frontier, history_from).to_dict())

    @v1.get(
        "/runs/{run_id}/snapshot",
        response_class=Response,
        responses={200: {"content": {OCTETS: {}}, "description": "the run's whole state"}},
        summary="The run's whole state (for checkpoints and migrations)",
        name="snapshot",
    )
    def get_snapshot(run_id: str) -> Response:
        return Response(c.snapshot(run_id), media_type=OCTETS)

    @v1.put(
        "/runs/{run_id}/snapshot",
        response_model=models.Run,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {OCTETS: {"schema": {"type": "string", "format": "binary"}}},
            }
        },
        summary="Create or replace a run from a snapshot",
        name="restore",
    )
    async def put_snapshot(run_id: str, request: Request) -> Response:
        require_media_type(request.headers.get("content-type"), OCTETS)
        data = await request.body()
        run = await run_in_threadpool(c.restore, run_id, data)
        return _json(run.to_dict())

    app.include_router(v1)

    @app.get("/healthz", summary="Liveness", responses={200: {"description": "alive"}})
    def healthz() -> Response:
        return _json({"status": "ok"})

    @app.get(
        "/readyz",
        response_model=models.Readiness,
        responses={503: {"model": models.Readiness, "description": "not ready"}},
        summary="Readiness: the store answers and the service is not draining",
    )
    def readyz() -> Response:
        ready, why = health.readiness()
        return _json(
            {"status": "ready" if ready else "unavailable", "store": why}, 200 if ready else 503
        )

    @app.get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
        summary="Prometheus metrics (docs/metrics.md); open unless the service is started with "
        "--metrics-token",
    )
    def metrics_text(request: Request) -> Response:
        if settings.metrics_token:
            access.identify(request.headers.get("authorization")).check(METRICS)
        content, media_type = metrics.exposition()
        return Response(content, media_type=media_type)

    def page_file(name: str) -> Response:
        found = assets.read(name)
        if found is None:
            raise NotFoundError(f"no page file {name!r}", path=f"/assets/{name}")
        content, media_type = found
        return Response(content, media_type=media_type, headers={"Cache-Control": "no-cache"})

    @app.get("/", include_in_schema=False)
    def page() -> Response:
        """The built-in dashboard page (runs, live charts, the frontier); open, like /metrics."""
        return page_file(assets.INDEX)

    @app.get("/assets/{name}", include_in_schema=False)
    def page_asset(name: str) -> Response:
        return page_file(name)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for body in _BODIES:
                components.update(body.schemas())
            state_rules(schema, coordinator.max_prompts, settings.max_body_bytes)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
