"""The prompts-per-run limit (issue 19, F1): a request for more prompts than a run may hold is
refused before anything is allocated, names the count and the limit, changes nothing, and leaves
the process serving every other run. Library on both stores, both doors, and ``cdas serve``'s flag.
"""

from __future__ import annotations

import time

import httpx
import pytest

import cdas
from cdas.client import GrpcClient, RestClient, RetryPolicy
from cdas.core.config import DEFAULT_MAX_PROMPTS
from cdas.core.errors import PayloadTooLargeError
from cdas.service.process import serve_process
from tests.conftest import StoreFactory
from tests.services import grpc_target, rest_url, running_service

ONCE = RetryPolicy(attempts=1)


def test_the_library_refuses_a_run_past_the_limit_and_changes_nothing(
    make_store: StoreFactory,
) -> None:
    coord = cdas.Coordinator(make_store(), max_prompts=100)
    with pytest.raises(PayloadTooLargeError, match=r"101 prompts.*at most 100"):
        coord.put_run("big", prompts=101)
    with pytest.raises(PayloadTooLargeError, match="101 prompts"):
        coord.put_run("big", prompts=[f"p{i}" for i in range(101)])
    with pytest.raises(PayloadTooLargeError, match="1000000000 prompts"):
        coord.put_run("big", prompts={"count": 10**9}, labels=[1.0])  # before the labels
    with pytest.raises(cdas.RunNotFoundError):
        coord.get_run("big")
    assert coord.put_run("run", prompts=60).size == 60
    with pytest.raises(PayloadTooLargeError, match=r"101 prompts.*at most 100"):
        coord.add_prompts("run", 41)
    assert coord.get_run("run").size == 60
    assert coord.add_prompts("run", 40) == 100
    assert coord.put_run("edge", prompts=100).size == 100


def test_the_default_limit_is_ten_million_and_is_checked_before_any_allocation() -> None:
    coord = cdas.Coordinator(cdas.MemoryStore())
    assert coord.max_prompts == DEFAULT_MAX_PROMPTS == 10**7
    started = time.perf_counter()
    for count in (10**8, 2**31 - 1):
        with pytest.raises(PayloadTooLargeError, match=f"{count} prompts"):
            coord.put_run("huge", prompts={"count": count})
    assert time.perf_counter() - started < 1.0  # refused, not allocated then freed
    assert coord.list_runs() == []
    with pytest.raises(cdas.InvalidArgumentError, match="max_prompts"):
        cdas.Coordinator(cdas.MemoryStore(), max_prompts=0)


def test_both_doors_answer_the_f1_request_with_a_named_4xx_and_keep_serving() -> None:
    coord = cdas.Coordinator(cdas.MemoryStore())
    with running_service(coord) as service:
        url = rest_url(service.bound)
        answer = httpx.put(f"{url}/v1/runs/big", json={"prompts": {"count": 100000000}})
        assert answer.status_code == 413
        error = answer.json()["error"]
        assert error["code"] == "payload_too_large"
        assert "100000000" in error["message"]
        assert httpx.get(f"{url}/v1/runs/big").status_code == 404
        with GrpcClient(grpc_target(service.bound), retry=ONCE) as rpc:
            with pytest.raises(PayloadTooLargeError, match="2147483647 prompts"):
                rpc.put_run("big", prompts=2**31 - 1)
            assert rpc.put_run("small", prompts=8).size == 8
        with RestClient(url, retry=ONCE) as rest:
            with pytest.raises(PayloadTooLargeError):
                rest.add_prompts("small", 10**7)
            assert rest.get_run("small").size == 8
        assert httpx.get(f"{url}/healthz").status_code == 200


def test_cdas_serve_takes_the_limit_from_its_flag() -> None:
    with serve_process("--max-prompts", "50") as served:
        over = httpx.put(f"{served.url}/v1/runs/a", json={"prompts": {"count": 51}})
        assert over.status_code == 413
        assert "at most 50" in over.json()["error"]["message"]
        assert (
            httpx.put(f"{served.url}/v1/runs/a", json={"prompts": {"count": 50}}).status_code == 201
        )
