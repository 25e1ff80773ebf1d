"""Bad input on both front doors (REST and gRPC): every error of the contract arrives with the
status of the error table (``cdas.core.errors.STATUS``), the contract's error body (REST) or rich
status (gRPC), a message naming the bad value, and changes nothing. Then auth, the body limit,
readiness with a Redis that goes away and comes back, gRPC health and reflection."""

from __future__ import annotations

import io
import itertools
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple, cast

import grpc
import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from google.protobuf import descriptor_pb2, struct_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

import cdas
from cdas.core.errors import STATUS
from cdas.rpc.status import error_of
from cdas.service.rest.app import create_app
from cdas.service.settings import ServiceSettings
from cdas.v1 import coordinator_pb2 as pb
from cdas.v1 import coordinator_pb2_grpc as pb_grpc
from tests.redis_servers import RedisServer
from tests.services import grpc_target, rest_url, running_service

OCTETS = {"content-type": "application/octet-stream"}

TOKEN = "t0ken"
DETAILS_KEY = "grpc-status-details-bin"
JSON = {"content-type": "application/json"}
SERVICE = "cdas.v1.Coordinator"
HEALTH = "grpc.health.v1.Health"


# ---------------------------------------------------------------- helpers
def seed_run(coordinator: cdas.Coordinator, run_id: str) -> None:
    """A run of 20 prompts with step 1 (size 4) issued and its results applied."""
    coordinator.put_run(run_id, prompts=20, seed=1)
    batch = coordinator.next_batch(run_id, 1, 4)
    coordinator.report_results(
        run_id, 1, [{"prompt_id": p, "correct": 3, "total": 8} for p in batch.prompt_ids]
    )


def state_of(coordinator: cdas.Coordinator, run_id: str) -> tuple[bytes, list[str]]:
    """Everything a rejected call must leave alone: the run's whole state and the set of runs."""
    return coordinator.snapshot(run_id), sorted(r.run_id for r in coordinator.list_runs())


def rest_client(
    coordinator: cdas.Coordinator, settings: ServiceSettings | None = None
) -> TestClient:
    return TestClient(create_app(coordinator, settings), raise_server_exceptions=False)


def assert_rest_error(response: httpx.Response, code: str, *says: str) -> dict[str, Any]:
    """The contract's error body with the table's status; the message names each of ``says``."""
    assert response.status_code == STATUS[code][0], response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, body
    assert error["code"] == code, body
    assert isinstance(error["message"], str)
    assert isinstance(error["details"], dict), body
    for part in says:
        assert part in error["message"], (part, error["message"])
    return cast(dict[str, Any], error)


def stub_of(channel: grpc.Channel) -> Any:
    return pb_grpc.CoordinatorStub(channel)  # type: ignore[no-untyped-call]


def grpc_failure(call: Callable[[], Any]) -> grpc.Call:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return cast(grpc.Call, info.value)


def rich_status(call: grpc.Call) -> status_pb2.Status:
    found = [v for k, v in call.trailing_metadata() or () if k == DETAILS_KEY]
    assert len(found) == 1, call.trailing_metadata()
    return status_pb2.Status.FromString(found[0])


def assert_grpc_error(call: grpc.Call, code: str, *says: str) -> dict[str, Any]:
    """The table's status code, rich details (ErrorInfo reason == code, BadRequest for invalid
    input naming the field) and a message naming each of ``says``; returns the details."""
    assert call.code() == grpc.StatusCode[STATUS[code][1]], (call.code(), call.details())
    message = call.details() or ""
    for part in says:
        assert part in message, (part, message)
    status = rich_status(call)
    assert status.code == call.code().value[0]
    assert status.message == message
    infos = []
    violations = []
    for item in status.details:
        if item.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            item.Unpack(info)
            infos.append(info)
        elif item.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            item.Unpack(bad)
            violations.extend(bad.field_violations)
    assert [i.reason for i in infos] == [code]
    assert infos[0].domain == "cdas.dev"
    details = json.loads(infos[0].metadata["details"])
    assert isinstance(details, dict)
    if code == "invalid_argument" and "field" in details:
        assert [v.field for v in violations] == [str(details["field"])]
    error = error_of(call.code(), message, call.trailing_metadata())
    assert (error.code, error.message, error.details) == (code, message, details)
    return details


# ---------------------------------------------------------------- the cases
class Rest(NamedTuple):
    method: str
    path: str  # "{run}" is the seeded run's id
    body: Any = None
    raw: bytes | None = None  # sent as is, with Content-Type: application/json


RpcRequest = Callable[[str], tuple[str, Any]]  # run id -> (method, request)


@dataclass(frozen=True)
class Case:
    id: str
    code: str
    says: tuple[str, ...]  # parts of the message; "{run}" is the seeded run's id
    rest: Rest | None
    rpc: RpcRequest | None = None


def ok(pid: str = "3") -> dict[str, Any]:
    return {"prompt_id": pid, "correct": 1, "total": 8}


def ok_pb(pid: str = "3") -> pb.Result:
    return pb.Result(prompt_id=pid, correct=1, total=8)


def struct(values: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(values)
    return message


def results_rpc(step: int, *results: pb.Result) -> RpcRequest:
    return lambda run: (
        "ReportResults",
        pb.ReportResultsRequest(run_id=run, step=step, results=list(results)),
    )


def advance_rpc(step: int, size: int, *results: pb.Result) -> RpcRequest:
    return lambda run: (
        "Advance",
        pb.AdvanceRequest(run_id=run, step=step, results=list(results), size=size),
    )


def advance_rest(step: int, size: int, *results: dict[str, Any]) -> Rest:
    return Rest(
        "POST", "/v1/runs/{run}/advance", {"step": step, "results": list(results), "size": size}
    )


CASES = [
    # ------------------------------------------------------------ 404
    Case(
        "unknown run (get)",
        "run_not_found",
        ("'nope'",),
        Rest("GET", "/v1/runs/nope"),
        lambda run: ("GetRun", pb.GetRunRequest(run_id="nope")),
    ),
    Case(
        "unknown run (delete)",
        "run_not_found",
        ("'nope'",),
        Rest("DELETE", "/v1/runs/nope"),
        lambda run: ("DeleteRun", pb.DeleteRunRequest(run_id="nope")),
    ),
    Case(
        "unknown run (batch)",
        "run_not_found",
        ("'nope'",),
        Rest("POST", "/v1/runs/nope/batches", {"step": 2, "size": 4}),
        lambda run: ("NextBatch", pb.NextBatchRequest(run_id="nope", step=2, size=4)),
    ),
    Case(
        "unknown run (results)",
        "run_not_found",
        ("'nope'",),
        Rest("POST", "/v1/runs/nope/results", {"step": 2, "results": [ok()]}),
        lambda run: (
            "ReportResults",
            pb.ReportResultsRequest(run_id="nope", step=2, results=[ok_pb()]),
        ),
    ),
    Case(
        "unknown run (advance)",
        "run_not_found",
        ("'nope'",),
        Rest("POST", "/v1/runs/nope/advance", {"step": 2, "results": [ok()], "size": 4}),
        lambda run: (
            "Advance",
            pb.AdvanceRequest(run_id="nope", step=2, results=[ok_pb()], size=4),
        ),
    ),
    Case(
        "unknown run (add prompts)",
        "run_not_found",
        ("'nope'",),
        Rest("POST", "/v1/runs/nope/prompts", {"ids": ["a"]}),
        lambda run: (
            "AddPrompts",
            pb.AddPromptsRequest(run_id="nope", prompts=pb.Prompts(ids=pb.IdList(ids=["a"]))),
        ),
    ),
    Case(
        "unknown run (prompt)",
        "run_not_found",
        ("'nope'",),
        Rest("GET", "/v1/runs/nope/prompts/3"),
        lambda run: ("GetPrompt", pb.GetPromptRequest(run_id="nope", prompt_id="3")),
    ),
    Case(
        "unknown run (state)",
        "run_not_found",
        ("'nope'",),
        Rest("GET", "/v1/runs/nope/state"),
        lambda run: ("GetState", pb.GetStateRequest(run_id="nope")),
    ),
    Case(
        "unknown run (snapshot)",
        "run_not_found",
        ("'nope'",),
        Rest("GET", "/v1/runs/nope/snapshot"),
        lambda run: ("Snapshot", pb.SnapshotRequest(run_id="nope")),
    ),
    Case(
        "unknown prompt",
        "prompt_not_found",
        ("'x-17'", "'{run}'"),
        Rest("GET", "/v1/runs/{run}/prompts/x-17"),
        lambda run: ("GetPrompt", pb.GetPromptRequest(run_id=run, prompt_id="x-17")),
    ),
    # ------------------------------------------------------------ 409
    Case(
        "same run id, other seed",
        "conflict",
        ("'{run}'",),
        Rest("PUT", "/v1/runs/{run}", {"prompts": {"count": 20}, "seed": 2}),
        lambda run: (
            "PutRun",
            pb.PutRunRequest(run_id=run, seed=2, prompts=pb.Prompts(count=20)),
        ),
    ),
    Case(
        "same run id, other strategy",
        "conflict",
        ("'{run}'",),
        Rest("PUT", "/v1/runs/{run}", {"strategy": "random", "prompts": {"count": 20}, "seed": 1}),
        lambda run: (
            "PutRun",
            pb.PutRunRequest(run_id=run, strategy="random", seed=1, prompts=pb.Prompts(count=20)),
        ),
    ),
    Case(
        "same run id, other prompt set",
        "conflict",
        ("'{run}'",),
        Rest("PUT", "/v1/runs/{run}", {"prompts": {"count": 21}, "seed": 1}),
        lambda run: (
            "PutRun",
            pb.PutRunRequest(run_id=run, seed=1, prompts=pb.Prompts(count=21)),
        ),
    ),
    Case(
        "same (step, round), other size",
        "conflict",
        ("size 5", "size 4"),
        Rest("POST", "/v1/runs/{run}/batches", {"step": 1, "size": 5}),
        lambda run: ("NextBatch", pb.NextBatchRequest(run_id=run, step=1, size=5)),
    ),
    Case(
        "advance: the next step's batch issued with another size",
        "conflict",
        ("size 5", "size 4"),
        advance_rest(0, 5, ok()),
        advance_rpc(0, 5, ok_pb()),
    ),
    # ------------------------------------------------------------ 422
    Case(
        "unknown strategy",
        "invalid_argument",
        ("'bogus'",),
        Rest("PUT", "/v1/runs/fresh", {"strategy": "bogus", "prompts": {"count": 5}}),
        lambda run: (
            "PutRun",
            pb.PutRunRequest(run_id="fresh", strategy="bogus", prompts=pb.Prompts(count=5)),
        ),
    ),
    Case(
        "unknown param",
        "invalid_argument",
        ("'bogus_param'",),
        Rest("PUT", "/v1/runs/fresh", {"params": {"bogus_param": 1}, "prompts": {"count": 5}}),
        lambda run: (
            "PutRun",
            pb.PutRunRequest(
                run_id="fresh", params=struct({"bogus_param": 1}), prompts=pb.Prompts(count=5)
            ),
        ),
    ),
    Case(
        "param of the wrong type",
        "invalid_argument",
        ("params.threshold", "'x'"),
        Rest("PUT", "/v1/runs/fresh", {"params": {"threshold": "x"}}),
        lambda run: (
            "PutRun",
            pb.PutRunRequest(run_id="fresh", params=struct({"threshold": "x"})),
        ),
    ),
    Case(
        "invalid run id",
        "invalid_argument",
        ("'bad id!'",),
        Rest("PUT", "/v1/runs/bad%20id!", {"prompts": {"count": 5}}),
        lambda run: ("PutRun", pb.PutRunRequest(run_id="bad id!", prompts=pb.Prompts(count=5))),
    ),
    Case(
        "negative seed",
        "invalid_argument",
        ("seed", "-1"),
        Rest("PUT", "/v1/runs/fresh", {"seed": -1}),
        lambda run: ("PutRun", pb.PutRunRequest(run_id="fresh", seed=-1)),
    ),
    Case(
        "negative prompt count",
        "invalid_argument",
        ("-1",),
        Rest("PUT", "/v1/runs/fresh", {"prompts": {"count": -1}}),
        lambda run: ("PutRun", pb.PutRunRequest(run_id="fresh", prompts=pb.Prompts(count=-1))),
    ),
    Case(
        "duplicate prompt ids (new run)",
        "invalid_argument",
        ("'a'",),
        Rest("PUT", "/v1/runs/fresh", {"prompts": {"ids": ["a", "b", "a"]}}),
        lambda run: (
            "PutRun",
            pb.PutRunRequest(
                run_id="fresh", prompts=pb.Prompts(ids=pb.IdList(ids=["a", "b", "a"]))
            ),
        ),
    ),
    Case(
        "duplicate prompt ids (added)",
        "invalid_argument",
        ("'a'",),
        Rest("POST", "/v1/runs/{run}/prompts", {"ids": ["a", "a"]}),
        lambda run: (
            "AddPrompts",
            pb.AddPromptsRequest(run_id=run, prompts=pb.Prompts(ids=pb.IdList(ids=["a", "a"]))),
        ),
    ),
    Case(
        "prompts to add named neither by ids nor by count",
        "invalid_argument",
        ('give "ids": [...] (or "count": N) to add prompts',),
        Rest("POST", "/v1/runs/{run}/prompts", {"labels": {"a": 1.0}}),
        lambda run: ("AddPrompts", pb.AddPromptsRequest(run_id=run)),
    ),
    Case(
        "prompts to add named by ids and by count",
        "invalid_argument",
        ('give "ids": [...] (or "count": N) to add prompts',),
        Rest("POST", "/v1/runs/{run}/prompts", {"ids": ["a"], "count": 2}),
    ),
    Case(
        "added prompt id already registered",
        "invalid_argument",
        ("'3'",),
        Rest("POST", "/v1/runs/{run}/prompts", {"ids": ["a", "3"]}),
        lambda run: (
            "AddPrompts",
            pb.AddPromptsRequest(run_id=run, prompts=pb.Prompts(ids=pb.IdList(ids=["a", "3"]))),
        ),
    ),
    Case(
        "prompt id over 256 bytes",
        "invalid_argument",
        ("257 bytes",),
        Rest("POST", "/v1/runs/{run}/prompts", {"ids": ["x" * 257]}),
        lambda run: (
            "AddPrompts",
            pb.AddPromptsRequest(run_id=run, prompts=pb.Prompts(ids=pb.IdList(ids=["x" * 257]))),
        ),
    ),
    Case(
        "empty prompt id",
        "invalid_argument",
        ("''",),
        Rest("POST", "/v1/runs/{run}/prompts", {"ids": ["a", ""]}),
        lambda run: (
            "AddPrompts",
            pb.AddPromptsRequest(run_id=run, prompts=pb.Prompts(ids=pb.IdList(ids=["a", ""]))),
        ),
    ),
    Case(
        "no prompts to add",
        "invalid_argument",
        ("ids",),
        Rest("POST", "/v1/runs/{run}/prompts", {"labels": {}}),
        lambda run: ("AddPrompts", pb.AddPromptsRequest(run_id=run)),
    ),
    Case(
        "label for an unknown prompt",
        "invalid_argument",
        ("'zz'",),
        Rest("PUT", "/v1/runs/fresh", {"prompts": {"count": 2}, "labels": {"zz": 1.0}}),
        lambda run: (
            "PutRun",
            pb.PutRunRequest(run_id="fresh", prompts=pb.Prompts(count=2), labels={"zz": 1.0}),
        ),
    ),
    Case(
        "batch size 0",
        "invalid_argument",
        ("size is 0",),
        Rest("POST", "/v1/runs/{run}/batches", {"step": 2, "size": 0}),
        lambda run: ("NextBatch", pb.NextBatchRequest(run_id=run, step=2, size=0)),
    ),
    Case(
        "negative batch size",
        "invalid_argument",
        ("size is -3",),
        Rest("POST", "/v1/runs/{run}/batches", {"step": 2, "size": -3}),
        lambda run: ("NextBatch", pb.NextBatchRequest(run_id=run, step=2, size=-3)),
    ),
    Case(
        "batch larger than the run",
        "invalid_argument",
        ("21", "20"),
        Rest("POST", "/v1/runs/{run}/batches", {"step": 2, "size": 21}),
        lambda run: ("NextBatch", pb.NextBatchRequest(run_id=run, step=2, size=21)),
    ),
    Case(
        "negative step (batch)",
        "invalid_argument",
        ("step is -1",),
        Rest("POST", "/v1/runs/{run}/batches", {"step": -1, "size": 4}),
        lambda run: ("NextBatch", pb.NextBatchRequest(run_id=run, step=-1, size=4)),
    ),
    Case(
        "negative round",
        "invalid_argument",
        ("round is -1",),
        Rest("POST", "/v1/runs/{run}/batches", {"step": 2, "size": 4, "round": -1}),
        lambda run: ("NextBatch", pb.NextBatchRequest(run_id=run, step=2, size=4, round=-1)),
    ),
    Case(
        "negative step (results)",
        "invalid_argument",
        ("step is -1",),
        Rest("POST", "/v1/runs/{run}/results", {"step": -1, "results": [ok()]}),
        results_rpc(-1, ok_pb()),
    ),
    Case(
        "pass rate above 1",
        "invalid_argument",
        ("results[1].pass_rate", "1.5"),
        Rest(
            "POST",
            "/v1/runs/{run}/results",
            {"step": 2, "results": [ok(), {"prompt_id": "4", "pass_rate": 1.5, "total": 8}]},
        ),
        results_rpc(2, ok_pb(), pb.Result(prompt_id="4", pass_rate=1.5, total=8)),
    ),
    Case(
        "pass rate below 0",
        "invalid_argument",
        ("-0.25",),
        Rest(
            "POST",
            "/v1/runs/{run}/results",
            {"step": 2, "results": [{"prompt_id": "4", "pass_rate": -0.25, "total": 8}]},
        ),
        results_rpc(2, pb.Result(prompt_id="4", pass_rate=-0.25, total=8)),
    ),
    Case(
        "pass rate NaN",
        "invalid_argument",
        ("results[1].pass_rate", "nan"),
        Rest(
            "POST",
            "/v1/runs/{run}/results",
            raw=b'{"step": 2, "results": [{"prompt_id": "3", "correct": 1, "total": 8},'
            b' {"prompt_id": "4", "pass_rate": NaN, "total": 8}]}',
        ),
        results_rpc(2, ok_pb(), pb.Result(prompt_id="4", pass_rate=math.nan, total=8)),
    ),
    Case(
        "pass rate infinite",
        "invalid_argument",
        ("inf",),
        Rest(
            "POST",
            "/v1/runs/{run}/results",
            raw=b'{"step": 2, "results": [{"prompt_id": "4", "pass_rate": Infinity, "total": 8}]}',
        ),
        results_rpc(2, pb.Result(prompt_id="4", pass_rate=math.inf, total=8)),
    ),
    Case(
        "reward NaN",
        "invalid_argument",
        ("nan",),
        Rest(
            "POST",
            "/v1/runs/{run}/results",
            raw=b'{"step": 2, "results": [{"prompt_id": "4", "rewards": [1.0, NaN]}]}',
        ),
        results_rpc(2, pb.Result(prompt_id="4", rewards=[1.0, math.nan])),
    ),
    Case(
        "correct above total",
        "invalid_argument",
        ("9",),
        Rest(
            "POST",
            "/v1/runs/{run}/results",
            {"step": 2, "results": [ok(), {"prompt_id": "4", "correct": 9, "total": 8}]},
        ),
        results_rpc(2, ok_pb(), pb.Result(prompt_id="4", correct=9, total=8)),
    ),
    Case(
        "two result forms in one result",
        "invalid_argument",
        ("'4'",),
        Rest(
            "POST",
            "/v1/runs/{run}/results",
            {
                "step": 2,
                "results": [{"prompt_id": "4", "correct": 1, "total": 8, "pass_rate": 0.5}],
            },
        ),
        results_rpc(2, pb.Result(prompt_id="4", correct=1, total=8, pass_rate=0.5)),
    ),
    Case(
        "no result form",
        "invalid_argument",
        ("'4'",),
        Rest("POST", "/v1/runs/{run}/results", {"step": 2, "results": [{"prompt_id": "4"}]}),
        results_rpc(2, pb.Result(prompt_id="4")),
    ),
    Case(
        "duplicate prompt ids in results",
        "invalid_argument",
        ("'3'",),
        Rest("POST", "/v1/runs/{run}/results", {"step": 2, "results": [ok(), ok("5"), ok()]}),
        results_rpc(2, ok_pb(), ok_pb("5"), ok_pb()),
    ),
    Case(
        "unknown prompt ids in results",
        "invalid_argument",
        ("'zz'",),
        Rest("POST", "/v1/runs/{run}/results", {"step": 2, "results": [ok(), ok("zz")]}),
        results_rpc(2, ok_pb(), ok_pb("zz")),
    ),
    Case(
        "advance: negative step",
        "invalid_argument",
        ("step is -1",),
        advance_rest(-1, 4, ok()),
        advance_rpc(-1, 4, ok_pb()),
    ),
    Case(
        "advance: batch size 0",
        "invalid_argument",
        ("size is 0",),
        advance_rest(1, 0, ok()),
        advance_rpc(1, 0, ok_pb()),
    ),
    Case(
        "advance: batch larger than the run",
        "invalid_argument",
        ("21", "20"),
        advance_rest(1, 21, ok()),
        advance_rpc(1, 21, ok_pb()),
    ),
    Case(
        "advance: unknown prompt ids in results",
        "invalid_argument",
        ("'zz'",),
        advance_rest(2, 4, ok(), ok("zz")),
        advance_rpc(2, 4, ok_pb(), ok_pb("zz")),
    ),
    Case(
        "advance: correct above total",
        "invalid_argument",
        ("results[1].correct", "9"),
        advance_rest(2, 4, ok(), {"prompt_id": "4", "correct": 9, "total": 8}),
        advance_rpc(2, 4, ok_pb(), pb.Result(prompt_id="4", correct=9, total=8)),
    ),
    Case(
        "advance: duplicate prompt ids in results",
        "invalid_argument",
        ("'3'",),
        advance_rest(2, 4, ok(), ok("5"), ok()),
        advance_rpc(2, 4, ok_pb(), ok_pb("5"), ok_pb()),
    ),
    # ------------------------------------------------------------ gRPC only: result columns
    Case(
        "columns of unequal length",
        "invalid_argument",
        ("columns", "2 prompt ids"),
        None,
        lambda run: (
            "ReportResults",
            pb.ReportResultsRequest(
                run_id=run,
                step=2,
                columns=pb.ResultColumns(prompt_ids=["3", "4"], correct=[1], total=[8, 8]),
            ),
        ),
    ),
    Case(
        "columns and results together",
        "invalid_argument",
        ("columns", "results"),
        None,
        lambda run: (
            "ReportResults",
            pb.ReportResultsRequest(
                run_id=run,
                step=2,
                results=[ok_pb("5")],
                columns=pb.ResultColumns(prompt_ids=["3"], correct=[1], total=[8]),
            ),
        ),
    ),
    Case(
        "unknown prompt ids in columns",
        "invalid_argument",
        ("'zz'",),
        None,
        lambda run: (
            "ReportResults",
            pb.ReportResultsRequest(
                run_id=run,
                step=2,
                columns=pb.ResultColumns(prompt_ids=["3", "zz"], correct=[1, 1], total=[8, 8]),
            ),
        ),
    ),
    Case(
        "duplicate prompt ids in columns",
        "invalid_argument",
        ("'3'",),
        None,
        lambda run: (
            "ReportResults",
            pb.ReportResultsRequest(
                run_id=run,
                step=2,
                columns=pb.ResultColumns(prompt_ids=["3", "3"], correct=[1, 1], total=[8, 8]),
            ),
        ),
    ),
    Case(
        "correct above total in columns",
        "invalid_argument",
        ("9",),
        None,
        lambda run: (
            "ReportResults",
            pb.ReportResultsRequest(
                run_id=run,
                step=2,
                columns=pb.ResultColumns(prompt_ids=["3", "4"], correct=[1, 9], total=[8, 8]),
            ),
        ),
    ),
    Case(
        "advance: columns of unequal length",
        "invalid_argument",
        ("columns", "2 prompt ids"),
        None,
        lambda run: (
            "Advance",
            pb.AdvanceRequest(
                run_id=run,
                step=2,
                columns=pb.ResultColumns(prompt_ids=["3", "4"], correct=[1], total=[8, 8]),
                size=4,
            ),
        ),
    ),
    Case(
        "advance: correct above total in columns",
        "invalid_argument",
        ("9",),
        None,
        lambda run: (
            "Advance",
            pb.AdvanceRequest(
                run_id=run,
                step=2,
                columns=pb.ResultColumns(prompt_ids=["3", "4"], correct=[1, 9], total=[8, 8]),
                size=4,
            ),
        ),
    ),
    # ------------------------------------------------------------ REST only: JSON itself
    Case(
        "wrong JSON type: correct is a string",
        "invalid_argument",
        ("results[0].correct", "'3'"),
        Rest(
            "POST",
            "/v1/runs/{run}/results",
            {"step": 2, "results": [{"prompt_id": "4", "correct": "3", "total": 8}]},
        ),
    ),
    Case(
        "wrong JSON type: step is a string",
        "invalid_argument",
        ("step", "'2'"),
        Rest("POST", "/v1/runs/{run}/batches", {"step": "2", "size": 4}),
    ),
    Case(
        "wrong JSON type: step is a float",
        "invalid_argument",
        ("step", "2.5"),
        Rest("POST", "/v1/runs/{run}/batches", {"step": 2.5, "size": 4}),
    ),
    Case(
        "wrong JSON type: step is a bool",
        "invalid_argument",
        ("step", "True"),
        Rest("POST", "/v1/runs/{run}/batches", {"step": True, "size": 4}),
    ),
    Case(
        "wrong JSON type: ids is a string",
        "invalid_argument",
        ("ids", "'abc'"),
        Rest("POST", "/v1/runs/{run}/prompts", {"ids": "abc"}),
    ),
    Case(
        "wrong JSON type: results is an object",
        "invalid_argument",
        ("results",),
        Rest("POST", "/v1/runs/{run}/results", {"step": 2, "results": {}}),
    ),
    Case(
        "wrong JSON type: seed is a string",
        "invalid_argument",
        ("seed", "'1'"),
        Rest("PUT", "/v1/runs/fresh", {"seed": "1"}),
    ),
    Case(
        "missing field",
        "invalid_argument",
        ("step is missing",),
        Rest("POST", "/v1/runs/{run}/batches", {"size": 4}),
    ),
    Case(
        "advance: size missing",
        "invalid_argument",
        ("size is missing",),
        Rest("POST", "/v1/runs/{run}/advance", {"step": 2, "results": [ok()]}),
    ),
    Case(
        "advance: wrong JSON type: size is a string",
        "invalid_argument",
        ("size", "'4'"),
        Rest("POST", "/v1/runs/{run}/advance", {"step": 2, "results": [ok()], "size": "4"}),
    ),
    Case(
        "extra unknown field",
        "invalid_argument",
        ("bogus_field",),
        Rest("POST", "/v1/runs/{run}/batches", {"step": 2, "size": 4, "bogus_field": 1}),
    ),
    Case(
        "extra unknown field in a result",
        "invalid_argument",
        ("bogus_field",),
        Rest(
            "POST",
            "/v1/runs/{run}/results",
            {"step": 2, "results": [{**ok(), "bogus_field": 1}]},
        ),
    ),
    Case(
        "extra unknown field (new run)",
        "invalid_argument",
        ("bogus_field",),
        Rest("PUT", "/v1/runs/fresh", {"prompts": {"count": 3}, "bogus_field": 1}),
    ),
    Case(
        "body not JSON",
        "invalid_argument",
        ("not valid JSON",),
        Rest("POST", "/v1/runs/{run}/batches", raw=b"step=2&size=4"),
    ),
    Case(
        "body truncated JSON",
        "invalid_argument",
        ("not valid JSON",),
        Rest("POST", "/v1/runs/{run}/results", raw=b'{"step": 2, "results": ['),
    ),
    Case(
        "body not UTF-8",
        "invalid_argument",
        (),
        Rest("PUT", "/v1/runs/fresh", raw=b'{"strategy": "\xff"}'),
    ),
    Case(
        "body a JSON array",
        "invalid_argument",
        ("[1, 2]",),
        Rest("POST", "/v1/runs/{run}/batches", raw=b"[1, 2]"),
    ),
    Case(
        "body empty",
        "invalid_argument",
        ("empty",),
        Rest("POST", "/v1/runs/{run}/batches", raw=b""),
    ),
    Case(
        "unknown path",
        "not_found",
        ("/v1/nothing",),
        Rest("GET", "/v1/nothing"),
    ),
    Case(
        "method not offered",
        "method_not_allowed",
        ("PATCH",),
        Rest("PATCH", "/v1/runs/{run}", {"seed": 1}),
    ),
]

REST_CASES = [pytest.param(c, id=c.id) for c in CASES if c.rest is not None]
RPC_CASES = [pytest.param(c, id=c.id) for c in CASES if c.rpc is not None]


def send(client: TestClient, request: Rest, run: str, **headers: str) -> httpx.Response:
    path = request.path.format(run=run)
    response: httpx.Response
    if request.raw is not None:
        response = client.request(request.method, path, content=request.raw, headers=JSON | headers)
    elif request.body is None:
        response = client.request(request.method, path, headers=headers)
    else:
        response = client.request(request.method, path, json=request.body, headers=headers)
    return response


def invoke(stub: Any, method: str, request: Any, metadata: tuple[tuple[str, str], ...] = ()) -> Any:
    """Call ``method`` on a raw stub; streaming answers are read to the end."""
    answer = getattr(stub, method)(request, metadata=metadata, timeout=30)
    return list(answer) if method == "Snapshot" else answer


# ---------------------------------------------------------------- REST
@pytest.mark.parametrize("case", REST_CASES)
def test_rest_rejects_and_changes_nothing(case: Case, coord: cdas.Coordinator) -> None:
    assert case.rest is not None
    seed_run(coord, "r")
    before = state_of(coord, "r")
    response = send(rest_client(coord), case.rest, "r")
    assert_rest_error(response, case.code, *(s.format(run="r") for s in case.says))
    assert state_of(coord, "r") == before


# ---------------------------------------------------------------- gRPC
@dataclass
class GrpcDoor:
    coordinator: cdas.Coordinator
    stub: Any
    channel: grpc.Channel


_runs = itertools.count()


@pytest.fixture(scope="module", params=["memory", "redis"])
def grpc_door(request: pytest.FixtureRequest) -> Iterator[GrpcDoor]:
    """One real service per store kind for the module; each test seeds its own run."""
    store: cdas.Store
    if request.param == "memory":
        store = cdas.MemoryStore()
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        redis_store = cdas.RedisStore(f"redis://127.0.0.1:{server.port}/0")
        redis_store.client.flushdb()
        store = redis_store
    coordinator = cdas.Coordinator(store)
    with (
        running_service(coordinator) as service,
        grpc.insecure_channel(grpc_target(service.bound)) as channel,
    ):
        yield GrpcDoor(coordinator, stub_of(channel), channel)
    if isinstance(store, cdas.RedisStore):
        store.client.flushdb()
        store.close()


@pytest.mark.parametrize("case", RPC_CASES)
def test_grpc_rejects_and_changes_nothing(case: Case, grpc_door: GrpcDoor) -> None:
    assert case.rpc is not None
    run = f"g{next(_runs)}"
    seed_run(grpc_door.coordinator, run)
    before = state_of(grpc_door.coordinator, run)
    method, request = case.rpc(run)
    failure = grpc_failure(lambda: invoke(grpc_door.stub, method, request))
    assert_grpc_error(failure, case.code, *(s.format(run=run) for s in case.says))
    assert state_of(grpc_door.coordinator, run) == before


def test_the_case_table_covers_every_code_of_the_contract() -> None:
    """The errors of API.md a request can cause (auth, size and store are tested below)."""
    assert {c.code for c in CASES} == {
        "run_not_found",
        "prompt_not_found",
        "conflict",
        "invalid_argument",
        "not_found",
        "method_not_allowed",
    }


# ---------------------------------------------------------------- snapshots that are not
def _npy() -> bytes:
    out = io.BytesIO()
    np.save(out, np.arange(3))
    return out.getvalue()


def _npz_without_meta() -> bytes:
    out = io.BytesIO()
    np.savez(out, a=np.arange(3))
    return out.getvalue()


BAD_SNAPSHOTS = [
    pytest.param(b"", id="empty"),
    pytest.param(b"not a snapshot", id="text"),
    pytest.param(b"\x93NUMPY", id="npy-magic-only"),
    pytest.param(_npy(), id="npy-array"),
    pytest.param(_npz_without_meta(), id="npz-without-meta"),
]


@pytest.mark.parametrize("data", BAD_SNAPSHOTS)
def test_rest_restore_of_a_bad_snapshot_is_invalid_and_changes_nothing(
    data: bytes, coord: cdas.Coordinator
) -> None:
    seed_run(coord, "r")
    before = state_of(coord, "r")
    client = rest_client(coord)
    response = client.put("/v1/runs/r/snapshot", content=data, headers=OCTETS)
    assert_rest_error(response, "invalid_argument", "snapshot")
    response = client.put("/v1/runs/fresh/snapshot", content=data, headers=OCTETS)
    assert_rest_error(response, "invalid_argument", "snapshot")
    assert state_of(coord, "r") == before


@pytest.mark.parametrize("data", BAD_SNAPSHOTS)
def test_grpc_restore_of_a_bad_snapshot_is_invalid_and_changes_nothing(
    data: bytes, grpc_door: GrpcDoor
) -> None:
    run = f"g{next(_runs)}"
    seed_run(grpc_door.coordinator, run)
    before = state_of(grpc_door.coordinator, run)
    for target in (run, f"{run}-fresh"):
        chunks = iter([pb.RestoreChunk(run_id=target, data=data)])
        failure = grpc_failure(partial(grpc_door.stub.Restore, chunks, timeout=30))
        assert_grpc_error(failure, "invalid_argument", "snapshot")
    assert state_of(grpc_door.coordinator, run) == before


# ---------------------------------------------------------------- auth
def test_rest_auth_needs_the_token_on_v1_only() -> None:
    coordinator = cdas.Coordinator(cdas.MemoryStore())
    seed_run(coordinator, "r")
    before = state_of(coordinator, "r")
    client = rest_client(coordinator, ServiceSettings(token=TOKEN))
    calls: list[tuple[str, str, Any]] = [
        ("GET", "/v1/runs", None),
        ("GET", "/v1/runs/r", None),
        ("PUT", "/v1/runs/other", {"prompts": {"count": 3}}),
        ("POST", "/v1/runs/r/batches", {"step": 2, "size": 4}),
        ("POST", "/v1/runs/r/results", {"step": 1, "results": [ok()]}),
        ("DELETE", "/v1/runs/r", None),
        ("GET", "/v1/runs/nope", None),  # auth comes before the lookup
    ]
    for method, path, body in calls:
        for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": TOKEN}):
            response = client.request(method, path, json=body, headers=headers)
            error = assert_rest_error(response, "unauthenticated")
            assert ("missing" if not headers else "wrong") in error["message"]
            assert TOKEN not in response.text
    assert state_of(coordinator, "r") == before
    for path in ("/healthz", "/readyz"):
        assert client.get(path).status_code == 200
    good = {"authorization": f"Bearer {TOKEN}"}
    assert client.get("/v1/runs/r", headers=good).json()["run_id"] == "r"
    response = client.post("/v1/runs/r/batches", json={"step": 2, "size": 4}, headers=good)
    assert response.status_code == 200
    assert len(response.json()["prompt_ids"]) == 4


def test_grpc_auth_needs_the_token_but_health_is_open() -> None:
    coordinator = cdas.Coordinator(cdas.MemoryStore())
    seed_run(coordinator, "r")
    before = state_of(coordinator, "r")
    settings = ServiceSettings(port=0, grpc_port=0, grace_seconds=2, token=TOKEN)
    with (
        running_service(coordinator, settings) as service,
        grpc.insecure_channel(grpc_target(service.bound)) as channel,
    ):
        stub = stub_of(channel)
        calls: list[tuple[str, Any]] = [
            ("GetRun", pb.GetRunRequest(run_id="r")),
            ("ListRuns", pb.ListRunsRequest()),
            ("PutRun", pb.PutRunRequest(run_id="other", prompts=pb.Prompts(count=3))),
            ("NextBatch", pb.NextBatchRequest(run_id="r", step=2, size=4)),
            ("DeleteRun", pb.DeleteRunRequest(run_id="r")),
            ("Snapshot", pb.SnapshotRequest(run_id="r")),
        ]
        for method, request in calls:
            for metadata in ((), (("authorization", "Bearer wrong"),)):
                failure = grpc_failure(partial(invoke, stub, method, request, metadata))
                assert_grpc_error(
                    failure, "unauthenticated", "missing" if not metadata else "wrong"
                )
        snapshot = coordinator.snapshot("r")
        failure = grpc_failure(
            lambda: stub.Restore(iter([pb.RestoreChunk(run_id="other", data=snapshot)]))
        )
        assert_grpc_error(failure, "unauthenticated")
        assert state_of(coordinator, "r") == before

        health = health_pb2_grpc.HealthStub(channel)
        for name in ("", SERVICE):
            answer = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=10)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING

        good = (("authorization", f"Bearer {TOKEN}"),)
        assert stub.GetRun(pb.GetRunRequest(run_id="r"), metadata=good).run_id == "r"
        batch = stub.NextBatch(pb.NextBatchRequest(run_id="r", step=2, size=4), metadata=good)
        assert len(batch.prompt_ids) == 4


# ---------------------------------------------------------------- body limit
LIMIT = 1000


def _big_prompts() -> bytes:
    return json.dumps({"ids": [f"p{i:05d}" for i in range(200)]}).encode()


def test_rest_body_over_the_limit_is_413_and_changes_nothing() -> None:
    coordinator = cdas.Coordinator(cdas.MemoryStore())
    seed_run(coordinator, "r")
    before = state_of(coordinator, "r")
    client = rest_client(coordinator, ServiceSettings(max_body_bytes=LIMIT))
    body = _big_prompts()
    assert len(body) > LIMIT
    response = client.post("/v1/runs/r/prompts", content=body, headers=JSON)
    error = assert_rest_error(response, "payload_too_large", str(len(body)), str(LIMIT))
    assert error["details"] == {"size": len(body), "limit": LIMIT}
    snapshot = coordinator.snapshot("r")
    response = client.put(
        "/v1/runs/other/snapshot", content=snapshot + b"\0" * LIMIT, headers=OCTETS
    )
    assert_rest_error(response, "payload_too_large", str(LIMIT))
    assert state_of(coordinator, "r") == before
    # under the limit, the same door works
    response = client.post("/v1/runs/r/prompts", json={"ids": ["a", "b"]})
    assert response.status_code == 200
    assert response.json() == {"size": 22}


def _chunks(data: bytes, size: int = 100) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def test_rest_chunked_json_body_over_the_limit_is_413() -> None:
    """A body without Content-Length (chunked) is counted as it streams."""
    coordinator = cdas.Coordinator(cdas.MemoryStore())
    seed_run(coordinator, "r")
    before = state_of(coordinator, "r")
    client = rest_client(coordinator, ServiceSettings(max_body_bytes=LIMIT))
    body = _big_prompts()
    response = client.post("/v1/runs/r/prompts", content=_chunks(body), headers=JSON)
    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert_rest_error(response, "payload_too_large", str(LIMIT))
    assert state_of(coordinator, "r") == before


def test_rest_chunked_snapshot_over_the_limit_is_413() -> None:
    coordinator = cdas.Coordinator(cdas.MemoryStore())
    seed_run(coordinator, "r")
    before = state_of(coordinator, "r")
    client = rest_client(coordinator, ServiceSettings(max_body_bytes=LIMIT))
    data = coordinator.snapshot("r") + b"\0" * LIMIT
    response = client.put("/v1/runs/other/snapshot", content=_chunks(data), headers=OCTETS)
    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert_rest_error(response, "payload_too_large", str(LIMIT))
    assert state_of(coordinator, "r") == before


def test_grpc_message_over_the_limit_is_refused() -> None:
    coordinator = cdas.Coordinator(cdas.MemoryStore())
    seed_run(coordinator, "r")
    before = state_of(coordinator, "r")
    settings = ServiceSettings(port=0, grpc_port=0, grace_seconds=2, max_body_bytes=LIMIT)
    with (
        running_service(coordinator, settings) as service,
        grpc.insecure_channel(grpc_target(service.bound)) as channel,
    ):
        stub = stub_of(channel)
        ids = [f"p{i:05d}" for i in range(200)]
        request = pb.AddPromptsRequest(run_id="r", prompts=pb.Prompts(ids=pb.IdList(ids=ids)))
        assert request.ByteSize() > LIMIT
        failure = grpc_failure(lambda: stub.AddPrompts(request, timeout=10))
        assert failure.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert str(LIMIT) in (failure.details() or "")

        # a stream of chunks each under the limit, over it together: the service counts
        chunks = [pb.RestoreChunk(run_id="other", data=b"\0" * 400) for _ in range(4)]
        failure = grpc_failure(lambda: stub.Restore(iter(chunks), timeout=10))
        assert_grpc_error(failure, "payload_too_large", str(LIMIT))
        assert state_of(coordinator, "r") == before

        small = pb.AddPromptsRequest(run_id="r", prompts=pb.Prompts(ids=pb.IdList(ids=["a"])))
        assert stub.AddPrompts(small, timeout=10).size == 21


# ---------------------------------------------------------------- readiness
def _wait_for_health(health: Any, status: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        answer = health.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=5)
        if answer.status == status:
            return
        assert time.monotonic() < deadline, f"gRPC health stayed {answer.status}, not {status}"
        time.sleep(0.1)


def test_readiness_follows_the_store(tmp_path: Path) -> None:
    """A Redis of the test's own: killed, the service is not ready and /v1 answers 503
    store_unavailable (gRPC UNAVAILABLE); restarted, everything answers again."""
    server = RedisServer(tmp_path / "redis", None, "--appendonly", "yes").start()
    store = cdas.RedisStore(server.url, socket_timeout=5)
    try:
        coordinator = cdas.Coordinator(store)
        seed_run(coordinator, "r")
        with (
            running_service(coordinator) as service,
            httpx.Client(base_url=rest_url(service.bound), timeout=30) as http,
            grpc.insecure_channel(grpc_target(service.bound)) as channel,
        ):
            stub = stub_of(channel)
            health = health_pb2_grpc.HealthStub(channel)
            ready = http.get("/readyz")
            assert (ready.status_code, ready.json()) == (200, {"status": "ready", "store": "ok"})
            _wait_for_health(health, health_pb2.HealthCheckResponse.SERVING)

            server.kill()
            ready = http.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["status"] == "unavailable"
            assert "Redis" in ready.json()["store"]
            assert http.get("/healthz").status_code == 200  # alive, only not ready
            assert_rest_error(http.get("/v1/runs/r"), "store_unavailable", "Redis")
            assert_rest_error(
                http.post("/v1/runs/r/batches", json={"step": 2, "size": 4}), "store_unavailable"
            )
            assert_rest_error(http.get("/v1/runs"), "store_unavailable")
            failure = grpc_failure(lambda: stub.GetRun(pb.GetRunRequest(run_id="r"), timeout=10))
            assert_grpc_error(failure, "store_unavailable", "Redis")
            _wait_for_health(health, health_pb2.HealthCheckResponse.NOT_SERVING)

            server.start()
            ready = http.get("/readyz")
            assert (ready.status_code, ready.json()) == (200, {"status": "ready", "store": "ok"})
            assert http.get("/v1/runs/r").json()["counts"]["batches"] == 1
            batch = http.post("/v1/runs/r/batches", json={"step": 2, "size": 4})
            assert batch.status_code == 200
            assert len(batch.json()["prompt_ids"]) == 4
            assert stub.GetRun(pb.GetRunRequest(run_id="r"), timeout=10).counts.batches == 2
            _wait_for_health(health, health_pb2.HealthCheckResponse.SERVING)
    finally:
        store.close()
        server.stop()


def test_rest_readiness_on_an_in_process_app(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis").start()
    store = cdas.RedisStore(server.url, socket_timeout=5)
    try:
        client = rest_client(cdas.Coordinator(store))
        assert client.get("/readyz").status_code == 200
        server.kill()
        assert client.get("/readyz").status_code == 503
        assert_rest_error(client.put("/v1/runs/x", json={}), "store_unavailable")
        server.start()
        assert client.get("/readyz").status_code == 200
        assert client.put("/v1/runs/x", json={}).status_code == 201
    finally:
        store.close()
        server.stop()


# ---------------------------------------------------------------- health and reflection
@pytest.fixture(scope="module")
def plain_service() -> Iterator[grpc.Channel]:
    coordinator = cdas.Coordinator(cdas.MemoryStore())
    with (
        running_service(coordinator) as service,
        grpc.insecure_channel(grpc_target(service.bound)) as channel,
    ):
        yield channel


def test_grpc_health_is_serving(plain_service: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(plain_service)
    for name in ("", SERVICE):
        answer = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=10)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    failure = grpc_failure(
        lambda: health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=10)
    )
    assert failure.code() == grpc.StatusCode.NOT_FOUND


def _reflect(channel: grpc.Channel, request: Any) -> Any:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    answers = list(stub.ServerReflectionInfo(iter([request]), timeout=10))
    assert len(answers) == 1
    return answers[0]


def test_grpc_reflection_lists_the_services(plain_service: grpc.Channel) -> None:
    answer = _reflect(plain_service, reflection_pb2.ServerReflectionRequest(list_services=""))
    names = {s.name for s in answer.list_services_response.service}
    assert {SERVICE, HEALTH, "grpc.reflection.v1alpha.ServerReflection"} <= names

    answer = _reflect(
        plain_service, reflection_pb2.ServerReflectionRequest(file_containing_symbol=SERVICE)
    )
    files = answer.file_descriptor_response.file_descriptor_proto
    assert files, answer
    protos = [descriptor_pb2.FileDescriptorProto.FromString(f) for f in files]
    described = {
        f"{p.package}.{s.name}": [m.name for m in s.method] for p in protos for s in p.service
    }
    assert described[SERVICE] == [
        m.name for m in pb.DESCRIPTOR.services_by_name["Coordinator"].methods
    ]
