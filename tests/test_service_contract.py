"""REST and gRPC describe one contract: the REST models carry the proto messages' fields (names
and types), every REST operation has its gRPC method, the generated code is fresh, and the served
OpenAPI schema lists every path of ``shared/API.md``."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, get_type_hints

import grpc
import httpx
import pytest
from fastapi.testclient import TestClient
from google.protobuf.descriptor import FieldDescriptor

import cdas
from cdas.client import AsyncRestClient, GrpcClient, RestClient
from cdas.rpc import messages as wire
from cdas.service.grpc_server import CoordinatorService
from cdas.service.rest import models
from cdas.service.rest.app import create_app
from cdas.v1 import coordinator_pb2 as pb
from cdas.v1 import coordinator_pb2_grpc as pb_grpc
from tests.services import grpc_target, rest_url, running_service

ROOT = Path(__file__).resolve().parent.parent
GENERATE = ROOT / "proto" / "generate.py"
SERVICE = pb.DESCRIPTOR.services_by_name["Coordinator"]

Descriptor = Any  # protobuf's message descriptors (the stubs type them as two classes)
Field = Any  # and their field descriptors

# ---------------------------------------------------------------- (a) fields
REQUESTS: list[tuple[type, Descriptor, set[str]]] = [
    # REST body, proto request, proto fields the REST path carries instead
    (models.PutRunBody, pb.PutRunRequest.DESCRIPTOR, {"run_id"}),
    (models.NextBatchBody, pb.NextBatchRequest.DESCRIPTOR, {"run_id"}),
    (models.ResultBody, pb.Result.DESCRIPTOR, set()),
    (models.ReportBody, pb.ReportResultsRequest.DESCRIPTOR, {"run_id"}),
    (models.AdvanceBody, pb.AdvanceRequest.DESCRIPTOR, {"run_id"}),
]

GRPC_ONLY: dict[str, set[str]] = {
    # a faster wire form of the same results (documented in the .proto), no REST twin
    "ReportResultsRequest": {"columns"},
    "AdvanceRequest": {"columns"},
}
"""Request fields only gRPC has, each an encoding of what REST already says."""

ANSWERS: list[tuple[type[models.Answer], Descriptor]] = [
    (models.Run, pb.Run.DESCRIPTOR),
    (models.Counts, pb.Counts.DESCRIPTOR),
    (models.RunList, pb.ListRunsResponse.DESCRIPTOR),
    (models.Size, pb.AddPromptsResponse.DESCRIPTOR),
    (models.Batch, pb.Batch.DESCRIPTOR),
    (models.ReportResultsAnswer, pb.ReportResultsResponse.DESCRIPTOR),
    (models.Advance, pb.AdvanceResponse.DESCRIPTOR),
    (models.Prompt, pb.Prompt.DESCRIPTOR),
    (models.RunState, pb.RunState.DESCRIPTOR),
    (models.StepSummary, pb.StepSummary.DESCRIPTOR),
    (models.Histogram, pb.Histogram.DESCRIPTOR),
    (models.PromptPage, pb.PromptPage.DESCRIPTOR),
    (models.PromptColumns, pb.PromptColumns.DESCRIPTOR),
]

NULLS_ON_THE_WIRE: dict[tuple[str, str], Any] = {
    # a repeated proto field cannot hold null: gRPC carries NaN or -1 where REST answers null
    # (documented in the .proto); an empty label column is REST's null (a run without labels)
    ("PromptColumns", "last_pass_rate"): list[float | None],
    ("PromptColumns", "last_step"): list[int | None],
    ("PromptColumns", "label"): list[float | None] | None,
}
"""Answer fields whose REST type admits null where the proto's repeated column holds a value."""

MODEL_OF_MESSAGE: dict[str, type] = {
    "Run": models.Run,
    "Counts": models.Counts,
    "Histogram": models.Histogram,
    "StepSummary": models.StepSummary,
    "Result": models.ResultBody,
    "Prompt": models.Prompt,
    "PromptColumns": models.PromptColumns,
    "Batch": models.Batch,
    "ReportResultsResponse": models.ReportResultsAnswer,
}

SCALARS: dict[int, type] = {
    FieldDescriptor.TYPE_INT64: int,
    FieldDescriptor.TYPE_DOUBLE: float,
    FieldDescriptor.TYPE_STRING: str,
    FieldDescriptor.TYPE_BOOL: bool,
    FieldDescriptor.TYPE_BYTES: bytes,
}


def names(message: Descriptor) -> set[str]:
    return {f.name for f in message.fields}


def rest_type(field: Field, optional_is_none: bool) -> Any:
    """The Python type a REST model should give ``field``: int64 -> int, double -> float,
    repeated -> list, map -> dict, Struct -> dict[str, Any], a message -> its model; a proto3
    ``optional`` scalar -> ``T | None`` in answers (requests leave such a key out instead)."""
    message = field.message_type
    if message is not None and message.GetOptions().map_entry:
        return dict[str, rest_type(message.fields_by_name["value"], False)]  # type: ignore[misc]
    if message is not None:
        base: Any = (
            dict[str, Any]
            if message.full_name == "google.protobuf.Struct"
            else MODEL_OF_MESSAGE[message.name]
        )
    else:
        base = SCALARS[field.type]
    if field.is_repeated:
        return list[base]
    if optional_is_none and message is None and field.has_presence:
        return base | None
    return base


@pytest.mark.parametrize(
    ("body", "message", "path_fields"),
    [pytest.param(*r, id=r[0].__name__) for r in REQUESTS],
)
def test_request_bodies_carry_the_proto_fields(
    body: type, message: Descriptor, path_fields: set[str]
) -> None:
    hints = get_type_hints(body)
    grpc_only = GRPC_ONLY.get(message.name, set())
    assert set(hints) == names(message) - path_fields - grpc_only
    assert path_fields | grpc_only <= names(message)
    for name, hint in hints.items():
        if name == "prompts":
            continue  # the oneof: test_prompts_oneof_is_the_rest_union
        assert hint == rest_type(message.fields_by_name[name], False), name


@pytest.mark.parametrize(
    ("answer", "message"), [pytest.param(*a, id=a[0].__name__) for a in ANSWERS]
)
def test_answers_carry_the_proto_fields(answer: type[models.Answer], message: Descriptor) -> None:
    fields = answer.model_fields
    assert set(fields) == names(message)
    for name, info in fields.items():
        field = message.fields_by_name[name]
        nullable = NULLS_ON_THE_WIRE.get((message.name, name))
        if nullable is not None:
            assert field.is_repeated, name
        expected = nullable if nullable is not None else rest_type(field, True)
        assert info.annotation == expected, name


def test_prompts_oneof_is_the_rest_union() -> None:
    """proto ``Prompts`` is a oneof ``kind`` of ``count`` and ``ids`` (an ``IdList``); REST
    puts ``{"count": N}`` or ``{"ids": [...]}`` under ``prompts`` when creating a run, and
    ``ids`` (or ``count``) at the top level when adding prompts."""
    prompts = pb.Prompts.DESCRIPTOR
    kind = prompts.oneofs_by_name["kind"]
    assert {f.name for f in kind.fields} == names(prompts) == {"count", "ids"}
    assert prompts.fields_by_name["count"].type == FieldDescriptor.TYPE_INT64
    id_list = prompts.fields_by_name["ids"].message_type
    assert id_list is pb.IdList.DESCRIPTOR
    assert names(id_list) == {"ids"}
    assert id_list.fields_by_name["ids"].is_repeated
    assert id_list.fields_by_name["ids"].type == FieldDescriptor.TYPE_STRING

    # creating a run: prompts is one of two objects, one per oneof member
    assert pb.PutRunRequest.DESCRIPTOR.fields_by_name["prompts"].message_type is prompts
    assert get_type_hints(models.PutRunBody)["prompts"] == models.CountPrompts | models.IdPrompts
    assert get_type_hints(models.CountPrompts) == {"count": int}
    assert get_type_hints(models.IdPrompts) == {"ids": list[str]}

    # adding prompts: the oneof members sit at the top level next to labels
    request = pb.AddPromptsRequest.DESCRIPTOR
    assert request.fields_by_name["prompts"].message_type is prompts
    hints = get_type_hints(models.AddPromptsBody)
    assert set(hints) == (names(request) - {"run_id", "prompts"}) | {f.name for f in kind.fields}
    assert hints["ids"] == list[str]
    assert hints["count"] is int
    assert hints["labels"] == rest_type(request.fields_by_name["labels"], False)


def test_result_columns_are_the_correct_total_form() -> None:
    """``ReportResultsRequest.columns`` and ``AdvanceRequest.columns`` (gRPC only) carry the
    correct/total form of ``Result`` as parallel arrays of the same names and types."""
    columns: Descriptor = pb.ReportResultsRequest.DESCRIPTOR.fields_by_name["columns"].message_type
    assert columns is pb.ResultColumns.DESCRIPTOR
    assert pb.AdvanceRequest.DESCRIPTOR.fields_by_name["columns"].message_type is columns
    for name in ("run_id", "step", "results"):
        report = pb.ReportResultsRequest.DESCRIPTOR.fields_by_name[name]
        field = pb.AdvanceRequest.DESCRIPTOR.fields_by_name[name]
        assert (field.number, field.type, field.message_type) == (
            report.number,
            report.type,
            report.message_type,
        )
    result = pb.Result.DESCRIPTOR
    assert names(columns) == {"prompt_ids", "correct", "total"}
    for name, twin in (("prompt_ids", "prompt_id"), ("correct", "correct"), ("total", "total")):
        assert columns.fields_by_name[name].is_repeated
        assert columns.fields_by_name[name].type == result.fields_by_name[twin].type


def test_put_run_answer_is_a_run_and_created_is_the_status() -> None:
    """gRPC answers ``PutRunResponse{run, created}``; REST answers the run with 201 or 200."""
    assert names(pb.PutRunResponse.DESCRIPTOR) == {"run", "created"}
    assert pb.PutRunResponse.DESCRIPTOR.fields_by_name["run"].message_type is pb.Run.DESCRIPTOR
    client = TestClient(create_app(cdas.Coordinator(cdas.MemoryStore())))
    first = client.put("/v1/runs/r", json={"prompts": {"count": 3}})
    again = client.put("/v1/runs/r", json={"prompts": {"count": 3}})
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json() == again.json()
    assert set(first.json()) == set(models.Run.model_fields)


# ---------------------------------------------------------------- (a') answers on the wire
@pytest.fixture(scope="module")
def both_doors() -> Iterator[tuple[httpx.Client, Any]]:
    coordinator = cdas.Coordinator(cdas.MemoryStore())
    coordinator.put_run("r", prompts=20, seed=3)
    with (
        running_service(coordinator) as service,
        httpx.Client(base_url=rest_url(service.bound), timeout=30) as http,
        grpc.insecure_channel(grpc_target(service.bound)) as channel,
    ):
        yield http, pb_grpc.CoordinatorStub(channel)  # type: ignore[no-untyped-call]


def test_rest_answers_are_the_models_and_match_grpc(both_doors: tuple[httpx.Client, Any]) -> None:
    """Each answer's JSON has exactly its model's fields (nested ones too) and says what the
    gRPC answer to the same call says."""
    http, stub = both_doors

    rest_batch = http.post("/v1/runs/r/batches", json={"step": 1, "size": 4}).json()
    grpc_batch = stub.NextBatch(pb.NextBatchRequest(run_id="r", step=1, size=4))
    assert set(rest_batch) == set(models.Batch.model_fields)
    assert rest_batch == wire.batch_view(grpc_batch).to_dict()  # the same (step, round)

    results = [{"prompt_id": p, "correct": 2, "total": 8} for p in rest_batch["prompt_ids"][:2]]
    outcome = http.post("/v1/runs/r/results", json={"step": 1, "results": results}).json()
    assert set(outcome) == set(models.ReportResultsAnswer.model_fields)
    assert outcome["applied"] == 2
    retry = stub.ReportResults(
        pb.ReportResultsRequest(
            run_id="r",
            step=1,
            results=[pb.Result(prompt_id=r["prompt_id"], correct=2, total=8) for r in results],
        )
    )
    assert (retry.applied, retry.duplicates) == (0, 2)  # one core behind both doors

    body = {"step": 1, "results": results, "size": 4}
    advance = http.post("/v1/runs/r/advance", json=body).json()
    assert set(advance) == set(models.Advance.model_fields)
    assert set(advance["report"]) == set(models.ReportResultsAnswer.model_fields)
    assert set(advance["batch"]) == set(models.Batch.model_fields)
    assert (advance["report"]["applied"], advance["batch"]["step"]) == (0, 2)
    grpc_advance = stub.Advance(
        pb.AdvanceRequest(
            run_id="r",
            step=1,
            columns=pb.ResultColumns(
                prompt_ids=[r["prompt_id"] for r in results], correct=[2, 2], total=[8, 8]
            ),
            size=4,
        )
    )
    assert advance == wire.advance_view(grpc_advance).to_dict()  # a retry: the same answer

    run = http.get("/v1/runs/r").json()
    assert set(run) == set(models.Run.model_fields)
    assert set(run["counts"]) == set(models.Counts.model_fields)
    assert run == wire.run_view(stub.GetRun(pb.GetRunRequest(run_id="r"))).to_dict()
    runs = http.get("/v1/runs").json()
    assert set(runs) == set(models.RunList.model_fields)
    assert runs["runs"] == [run]

    pid = rest_batch["prompt_ids"][0]
    prompt = http.get(f"/v1/runs/r/prompts/{pid}").json()
    assert set(prompt) == set(models.Prompt.model_fields)
    grpc_prompt = stub.GetPrompt(pb.GetPromptRequest(run_id="r", prompt_id=pid))
    assert prompt == wire.prompt_view(grpc_prompt).to_dict()

    state = http.get("/v1/runs/r/state").json()
    assert set(state) == set(models.RunState.model_fields)
    assert set(state["histogram"]) == set(models.Histogram.model_fields)
    assert state["history"]
    for summary in state["history"]:
        assert set(summary) == set(models.StepSummary.model_fields)
    assert state == wire.state_view(stub.GetState(pb.GetStateRequest(run_id="r"))).to_dict()

    size = http.post("/v1/runs/r/prompts", json={"ids": ["extra"]}).json()
    assert size == {"size": 21}
    assert set(size) == set(models.Size.model_fields)

    rest_page = http.get("/v1/runs/r/prompts?start=2&limit=5").json()
    assert set(rest_page) == set(models.PromptPage.model_fields)
    assert set(rest_page["columns"]) == set(models.PromptColumns.model_fields)
    request = pb.ExportPromptsRequest(run_id="r", start=2, page_size=5, limit=5)
    [grpc_page] = stub.ExportPrompts(request)
    assert rest_page == wire.prompt_page_view(grpc_page).to_dict()

    rest_snapshot = http.get("/v1/runs/r/snapshot").content
    grpc_snapshot = b"".join(c.data for c in stub.Snapshot(pb.SnapshotRequest(run_id="r")))
    assert rest_snapshot == grpc_snapshot


# ---------------------------------------------------------------- (b) operations
OPERATIONS: dict[tuple[str, str], str] = {
    ("PUT", "/v1/runs/{run_id}"): "PutRun",
    ("GET", "/v1/runs"): "ListRuns",
    ("GET", "/v1/runs/{run_id}"): "GetRun",
    ("DELETE", "/v1/runs/{run_id}"): "DeleteRun",
    ("POST", "/v1/runs/{run_id}/prompts"): "AddPrompts",
    ("POST", "/v1/runs/{run_id}/batches"): "NextBatch",
    ("POST", "/v1/runs/{run_id}/results"): "ReportResults",
    ("POST", "/v1/runs/{run_id}/advance"): "Advance",
    ("GET", "/v1/runs/{run_id}/prompts/{prompt_id}"): "GetPrompt",
    ("GET", "/v1/runs/{run_id}/state"): "GetState",
    ("GET", "/v1/runs/{run_id}/snapshot"): "Snapshot",
    ("PUT", "/v1/runs/{run_id}/snapshot"): "Restore",
    ("GET", "/v1/runs/{run_id}/prompts"): "ExportPrompts",
}
"""The 12 operations of API.md and the one-call step (advance): REST method and path, and the
gRPC method."""

HEALTH_PATHS = {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics")}

LIBRARY_METHODS = {
    "PutRun": "put_run",
    "ListRuns": "list_runs",
    "GetRun": "get_run",
    "DeleteRun": "delete_run",
    "AddPrompts": "add_prompts",
    "NextBatch": "next_batch",
    "ReportResults": "report_results",
    "Advance": "advance",
    "GetPrompt": "get_prompt",
    "GetState": "get_state",
    "Snapshot": "snapshot",
    "Restore": "restore",
    "ExportPrompts": "export_prompts",
}


def openapi_operations(schema: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in schema["paths"].items() for method in item}


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    client = TestClient(create_app(cdas.Coordinator(cdas.MemoryStore())))
    response = client.get("/openapi.json")
    assert response.status_code == 200
    schema: dict[str, Any] = response.json()
    return schema


def test_every_rest_operation_has_a_grpc_method(openapi: dict[str, Any]) -> None:
    rest = {op for op in openapi_operations(openapi) if op[1].startswith("/v1/")}
    assert rest == set(OPERATIONS)
    assert {m.name for m in SERVICE.methods} == set(OPERATIONS.values())
    assert len(OPERATIONS) == 13
    streaming = {
        m.name: (m.client_streaming, m.server_streaming)
        for m in SERVICE.methods
        if m.client_streaming or m.server_streaming
    }
    assert streaming == {
        "Snapshot": (False, True),
        "Restore": (True, False),
        "ExportPrompts": (False, True),
    }


def test_the_grpc_server_implements_every_method() -> None:
    for method in SERVICE.methods:
        implemented = getattr(CoordinatorService, method.name)
        assert implemented is not getattr(pb_grpc.CoordinatorServicer, method.name), method.name


def test_library_and_clients_offer_every_operation() -> None:
    for owner in (cdas.Coordinator, RestClient, AsyncRestClient, GrpcClient):
        missing = [m for m in LIBRARY_METHODS.values() if not callable(getattr(owner, m, None))]
        assert missing == [], owner.__name__
    assert set(LIBRARY_METHODS) == set(OPERATIONS.values())


# ---------------------------------------------------------------- (c) generated code
def load_generate() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cdas_proto_generate", GENERATE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_code_is_fresh() -> None:
    done = subprocess.run(
        [sys.executable, str(GENERATE), "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "up to date" in done.stdout


def _copy_protos(tmp_path: Path) -> Path:
    root = tmp_path / "proto"
    shutil.copytree(ROOT / "proto" / "cdas", root / "cdas")
    return root


def test_check_sees_a_stale_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    generate = load_generate()
    root = _copy_protos(tmp_path)
    monkeypatch.setattr(generate, "PROTO_ROOT", root)
    assert generate.stale() == []  # the copy as it is generates the committed code

    proto = root / "cdas" / "v1" / "coordinator.proto"
    text = proto.read_text()
    old = "message Counts {\n"
    assert old in text
    proto.write_text(text.replace(old, old + "  int64 added_for_the_test = 99;\n"))
    changed = generate.stale()
    assert "coordinator_pb2.py" in changed
    assert "coordinator_pb2.pyi" in changed

    out = tmp_path / "out"
    generate.generate(out)
    assert "added_for_the_test" in (out / "cdas" / "v1" / "coordinator_pb2.pyi").read_text()


# ---------------------------------------------------------------- (d) OpenAPI
def test_openapi_lists_every_path_of_the_contract(openapi: dict[str, Any]) -> None:
    assert openapi_operations(openapi) == set(OPERATIONS) | HEALTH_PATHS
    assert openapi["info"]["version"] == cdas.__version__


def test_openapi_documents_the_error_body(openapi: dict[str, Any]) -> None:
    error = {"$ref": "#/components/schemas/ErrorBody"}
    for method, path in OPERATIONS:
        responses = openapi["paths"][path][method.lower()]["responses"]
        for status in ("401", "404", "409", "413", "422", "503"):
            content = responses[status]["content"]["application/json"]
            assert content["schema"] == error, (method, path, status)
    schemas = openapi["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    detail = schemas["ErrorDetail"]
    assert set(detail["properties"]) == {"code", "message", "details"}
    assert set(detail["required"]) == {"code", "message", "details"}


def test_openapi_request_bodies_are_strict(openapi: dict[str, Any]) -> None:
    schemas = openapi["components"]["schemas"]
    required = {
        "PutRunBody": set(),
        "AddPromptsBody": set(),
        "NextBatchBody": {"step", "size"},
        "ReportBody": {"step", "results"},
        "AdvanceBody": {"step", "results", "size"},
        "ResultBody": {"prompt_id"},
        "CountPrompts": {"count"},
        "IdPrompts": {"ids"},
    }
    for name, needed in required.items():
        schema = schemas[name]
        assert schema["additionalProperties"] is False, name
        assert set(schema.get("required", [])) == needed, name
        hints = get_type_hints(getattr(models, name))
        assert set(schema["properties"]) == set(hints), name
