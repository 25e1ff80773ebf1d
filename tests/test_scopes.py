"""Scoped tokens (issue 19), on both doors of a running service: every operation with every scope.

Tokens: the single admin token (``--token-file``) and a tokens file with ``read``,
``write:team-a.``, ``write`` (every run) and ``read,write:team-a.``. Each operation is tried by
each token on a run inside the prefix (``team-a.r``) and one outside it (``other``), through the
SDK clients (REST and gRPC). The expected answer is written out here from the issue's words, not
read from the service's own table: a denied call is ``PermissionDeniedError`` (403 /
PERMISSION_DENIED) naming the scope it lacks, and changes nothing in either run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

import cdas
from cdas.client import GrpcClient, RestClient, RetryPolicy
from cdas.core.errors import PermissionDeniedError, UnauthenticatedError
from cdas.service.access import NEEDS, Scope, load_scoped_tokens
from cdas.service.server import Service
from cdas.service.settings import ServiceSettings
from cdas.v1 import coordinator_pb2 as pb
from cdas.v1 import coordinator_pb2_grpc as pb_grpc
from tests.services import grpc_target, rest_url, running_service

ADMIN = "admin-t0ken"
TOKENS_FILE = """\
# token        scopes
reader-t0ken   read
team-t0ken     write:team-a.
writer-t0ken   write
both-t0ken     read, write:team-a.
"""
INSIDE, OUTSIDE = "team-a.r", "other"
READS = {"get_run", "get_prompt", "get_state", "snapshot", "export_prompts"}


def expected(token: str, operation: str, run: str) -> bool:
    """The issue's rule: read reads everything; write:<prefix> reads and writes its runs only;
    write covers every run; admin everything."""
    if token in (ADMIN, "writer-t0ken"):
        return True
    if token == "reader-t0ken":
        return operation in READS
    if token == "both-t0ken":
        return operation in READS or run.startswith("team-a.")
    return run.startswith("team-a.")  # team-t0ken


def seed(coord: cdas.Coordinator) -> dict[str, bytes]:
    snaps = {}
    for run in (INSIDE, OUTSIDE):
        coord.put_run(run, prompts=8, seed=1)
        batch = coord.next_batch(run, 1, 4)
        coord.report_results(
            run, 1, [{"prompt_id": p, "correct": 3, "total": 8} for p in batch.prompt_ids]
        )
        snaps[run] = coord.snapshot(run)
    return snaps


def reset(coord: cdas.Coordinator, snaps: dict[str, bytes]) -> None:
    for run in [r.run_id for r in coord.list_runs()]:
        if run not in snaps:
            coord.delete_run(run)
    for run, data in snaps.items():
        coord.restore(run, data)


def operations(snaps: dict[str, bytes]) -> dict[str, Callable[[Any, str], Any]]:
    """One call of each operation on ``run`` through a client (both have the same methods)."""
    return {
        "put_run": lambda c, run: c.put_run(run, prompts=8, seed=1),
        "get_run": lambda c, run: c.get_run(run),
        "delete_run": lambda c, run: c.delete_run(run),
        "add_prompts": lambda c, run: c.add_prompts(run, 2),
        "next_batch": lambda c, run: c.next_batch(run, 2, 4),
        "report_results": lambda c, run: c.report_results(
            run, 1, [{"prompt_id": "0", "correct": 1, "total": 8}]
        ),
        "advance": lambda c, run: c.advance(
            run, 1, [{"prompt_id": "0", "correct": 1, "total": 8}], 4
        ),
        "get_prompt": lambda c, run: c.get_prompt(run, "0"),
        "get_state": lambda c, run: c.get_state(run),
        "snapshot": lambda c, run: c.snapshot(run),
        "export_prompts": lambda c, run: list(c.export_prompts(run)),
        "restore": lambda c, run: c.restore(run, snaps[run]),
    }


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, cdas.Coordinator]]:
    path = tmp_path_factory.mktemp("scopes") / "tokens"
    path.write_text(TOKENS_FILE)
    settings = ServiceSettings(
        port=0,
        grpc_port=0,
        grace_seconds=2,
        token=ADMIN,
        scoped_tokens=load_scoped_tokens(str(path)),
        metrics_token=True,
    )
    coord = cdas.Coordinator(cdas.MemoryStore())
    with running_service(coord, settings) as svc:
        yield svc, coord


def client(door: str, svc: Service, token: str | None) -> RestClient | GrpcClient:
    once = RetryPolicy(attempts=1)
    if door == "rest":
        return RestClient(rest_url(svc.bound), token, retry=once)
    return GrpcClient(grpc_target(svc.bound), token, retry=once)


TOKENS = [ADMIN, "reader-t0ken", "team-t0ken", "writer-t0ken", "both-t0ken"]


def test_every_api_operation_has_a_scope_rule_and_is_tried_here() -> None:
    from cdas.observe.metrics import OPERATIONS

    assert set(NEEDS) == set(OPERATIONS)
    assert set(operations({})) | {"list_runs"} == set(OPERATIONS)


@pytest.mark.parametrize("door", ["rest", "grpc"])
@pytest.mark.parametrize("token", TOKENS)
def test_every_operation_with_every_scope(
    service: tuple[Service, cdas.Coordinator], door: str, token: str
) -> None:
    svc, coord = service
    reset(coord, {})
    snaps = seed(coord)
    with client(door, svc, token) as sdk:
        for operation, call in operations(snaps).items():
            for run in (INSIDE, OUTSIDE):
                reset(coord, snaps)
                before = {r: coord.snapshot(r) for r in snaps}
                if expected(token, operation, run):
                    call(sdk, run)
                else:
                    with pytest.raises(PermissionDeniedError) as denied:
                        call(sdk, run)
                    assert operation in denied.value.message
                    assert "needs" in denied.value.message
                    assert denied.value.details["needs"]
                    assert {r: coord.snapshot(r) for r in snaps} == before, (operation, run)
                    assert sorted(r.run_id for r in coord.list_runs()) == sorted(snaps)
        listed = sorted(r.run_id for r in sdk.list_runs())
        sees = [r for r in (INSIDE, OUTSIDE) if expected(token, "get_run", r)]
        assert listed == sorted(sees)


@pytest.mark.parametrize("door", ["rest", "grpc"])
@pytest.mark.parametrize("token", [None, "unknown-t0ken"])
def test_without_a_known_token_every_operation_is_401(
    service: tuple[Service, cdas.Coordinator], door: str, token: str | None
) -> None:
    svc, coord = service
    reset(coord, {})
    snaps = seed(coord)
    with client(door, svc, token) as sdk:
        for operation, call in [
            *operations(snaps).items(),
            ("list_runs", lambda c, r: c.list_runs()),
        ]:
            with pytest.raises(UnauthenticatedError):
                call(sdk, INSIDE)
            assert {r: coord.snapshot(r) for r in snaps} == snaps, operation


def test_a_denied_rest_call_is_403_with_the_contract_body(
    service: tuple[Service, cdas.Coordinator],
) -> None:
    svc, coord = service
    reset(coord, {})
    snaps = seed(coord)
    answer = httpx.post(
        f"{rest_url(svc.bound)}/v1/runs/{OUTSIDE}/batches",
        json={"step": 2, "size": 4},
        headers={"authorization": "Bearer team-t0ken"},
    )
    assert answer.status_code == 403
    error = answer.json()["error"]
    assert error["code"] == "permission_denied"
    assert error["details"]["scopes"] == ["write:team-a."]
    assert "write:<a prefix of the run id> or admin" in error["message"]
    assert coord.snapshot(OUTSIDE) == snaps[OUTSIDE]
    with grpc.insecure_channel(grpc_target(svc.bound)) as channel:
        stub = pb_grpc.CoordinatorStub(channel)  # type: ignore[no-untyped-call]
        with pytest.raises(grpc.RpcError) as denied:
            stub.NextBatch(
                pb.NextBatchRequest(run_id=OUTSIDE, step=2, size=4),
                metadata=[("authorization", "Bearer reader-t0ken")],
            )
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_metrics_need_the_read_scope_when_asked(service: tuple[Service, cdas.Coordinator]) -> None:
    svc, _ = service
    url = f"{rest_url(svc.bound)}/metrics"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"authorization": "Bearer team-t0ken"}).status_code == 403
    for token in ("reader-t0ken", "writer-t0ken", ADMIN):
        answer = httpx.get(url, headers={"authorization": f"Bearer {token}"})
        assert answer.status_code == 200, token
        assert "cdas_run_competence" in answer.text
    assert httpx.get(f"{rest_url(svc.bound)}/healthz").status_code == 200  # health stays open
    assert httpx.get(f"{rest_url(svc.bound)}/").status_code == 200  # the page's files too


def test_metrics_can_drop_the_per_run_series() -> None:
    coord = cdas.Coordinator(cdas.MemoryStore())
    settings = ServiceSettings(port=0, grpc_port=0, grace_seconds=2, run_metrics=False)
    with running_service(coord, settings) as svc:
        seed(coord)
        with RestClient(rest_url(svc.bound)) as sdk:  # through the door: the tallies see it
            sdk.report_results(INSIDE, 1, [{"prompt_id": "0", "correct": 1, "total": 8}])
        text = httpx.get(f"{rest_url(svc.bound)}/metrics").text
    assert "cdas_runs 2.0" in text
    assert "cdas_request_duration_seconds" in text
    assert INSIDE not in text
    assert OUTSIDE not in text
    assert 'run="' not in text


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("tok", "line 1 gives no scope"),
        ("tok writer", "scope 'writer' is not one of"),
        ("tok read:x", "scope 'read:x'"),
        ("a read\na admin", "line 2 repeats a token"),
        ("# nothing\n\n", "holds no token"),
    ],
)
def test_a_bad_tokens_file_is_refused_naming_the_line(tmp_path: Path, line: str, says: str) -> None:
    path = tmp_path / "tokens"
    path.write_text(line)
    with pytest.raises(cdas.InvalidArgumentError) as bad:
        load_scoped_tokens(str(path))
    assert says in bad.value.message
    assert "tok" not in bad.value.message.replace("token", "") or "scope" in bad.value.message


def test_scopes_parse_and_print() -> None:
    for text in ("read", "admin", "write", "write:team-a."):
        assert Scope.parse(text) == Scope.parse(str(Scope.parse(text)))
    assert Scope.parse("write").prefix == ""
