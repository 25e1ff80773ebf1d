"""Issue 19's REST findings F4 and F5: a 405 names what is allowed (``Allow``), auth comes before
routing under /v1 (an unknown path or method is 401 without the token, so routes cannot be
probed), and the Bearer scheme is case-insensitive on both doors (RFC 9110)."""

from __future__ import annotations

import grpc
import httpx
import pytest

import cdas
from cdas.client import GrpcClient, RetryPolicy
from cdas.service.settings import ServiceSettings
from cdas.v1 import coordinator_pb2 as pb
from cdas.v1 import coordinator_pb2_grpc as pb_grpc
from tests.services import grpc_target, rest_url, running_service

TOKEN = "t0ken"


def test_a_405_carries_allow_and_names_the_methods() -> None:
    with running_service(cdas.Coordinator(cdas.MemoryStore())) as service:
        answer = httpx.patch(f"{rest_url(service.bound)}/v1/runs/r", json={})
        assert answer.status_code == 405
        allowed = {m.strip() for m in answer.headers["allow"].split(",")}
        assert {"GET", "PUT", "DELETE"} <= allowed
        assert "PATCH" not in allowed
        assert answer.json()["error"]["code"] == "method_not_allowed"
        assert "PUT" in answer.json()["error"]["message"]


def test_without_the_token_v1_cannot_be_probed_and_bearer_is_case_insensitive() -> None:
    settings = ServiceSettings(port=0, grpc_port=0, grace_seconds=2, token=TOKEN)
    coord = cdas.Coordinator(cdas.MemoryStore())
    with running_service(coord, settings) as service:
        url = rest_url(service.bound)
        for method, path in (("GET", "/v1/nothing-here"), ("PATCH", "/v1/runs/r")):
            for headers in ({}, {"authorization": "Bearer wrong"}):
                answer = httpx.request(method, url + path, headers=headers)
                assert answer.status_code == 401, (method, path, headers)
                assert "allow" not in answer.headers
        good = {"authorization": f"Bearer {TOKEN}"}
        assert httpx.get(f"{url}/v1/nothing-here", headers=good).status_code == 404
        assert httpx.patch(f"{url}/v1/runs/r", headers=good).status_code == 405
        assert httpx.get(f"{url}/nothing-here").status_code == 404  # outside /v1: no auth
        for scheme in ("bearer", "BEARER", "Bearer"):
            answer = httpx.get(f"{url}/v1/runs", headers={"authorization": f"{scheme} {TOKEN}"})
            assert answer.status_code == 200, scheme
        bare = httpx.get(f"{url}/v1/runs", headers={"authorization": TOKEN})
        assert bare.status_code == 401
        assert TOKEN not in bare.text  # the refusal never echoes what was sent
        with grpc.insecure_channel(grpc_target(service.bound)) as channel:
            stub = pb_grpc.CoordinatorStub(channel)  # type: ignore[no-untyped-call]
            stub.ListRuns(pb.ListRunsRequest(), metadata=[("authorization", f"bearer {TOKEN}")])
            with pytest.raises(grpc.RpcError) as denied:
                stub.ListRuns(pb.ListRunsRequest(), metadata=[("authorization", "bearer nope")])
            assert denied.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with GrpcClient(grpc_target(service.bound), TOKEN, retry=RetryPolicy(attempts=1)) as rpc:
            assert rpc.list_runs() == []
