"""The state's frontier: ``get_state(run_id, frontier=K)`` lists the K prompts with results whose
difficulty D is nearest the competence C (smallest |D - C|), sorted by difficulty.

Every answer is checked against a brute force over ``get_prompt`` of every prompt, on the memory
store and on a real Redis; the library, REST (sync and async clients, and the raw JSON) and gRPC
give equal states; K outside 0..1000 is ``invalid_argument`` naming ``frontier`` on every door.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator, Sequence
from functools import partial
from typing import Any

import grpc
import httpx
import numpy as np
import pytest

import cdas
from cdas.client import AsyncRestClient, GrpcClient, RestClient
from cdas.core.views import PromptInfo, RunState
from cdas.service.server import Service
from cdas.store.base import Operation
from cdas.v1 import coordinator_pb2 as pb
from tests.conftest import assert_same_state, group_results, logical_state
from tests.redis_servers import RedisServer
from tests.services import grpc_target, rest_url, running_service
from tests.test_service_errors import assert_grpc_error, assert_rest_error, grpc_failure, stub_of

N = 80
"""Prompts of the trained run; 6 steps of 12 leave at least 8 of them without results."""
STEPS = 6
BATCH = 12
PROMPT_KEYS = {"prompt_id", "difficulty", "updates", "last_pass_rate", "last_step", "label"}


def train(api: Any, run_id: str, seed: int = 0, steps: int = STEPS) -> None:
    """A CDAS run of N prompts ("0".."79") trained for ``steps`` steps with Bernoulli groups of 8
    (a retried report each step, counted as duplicates)."""
    api.put_run(run_id, prompts=N, seed=seed)
    rng = np.random.default_rng(seed)
    pass_prob = rng.uniform(0.0, 1.0, N)
    for step in range(steps):
        batch = api.next_batch(run_id, step, BATCH)
        results = group_results(batch.prompt_ids, pass_prob, rng)
        api.report_results(run_id, step, results)
        api.report_results(run_id, step, results[:3])  # a retry: duplicates, nothing changes


def brute_frontier(api: Any, run_id: str, ids: Sequence[str], k: int) -> list[PromptInfo]:
    """The frontier from first principles: ``get_prompt`` of every prompt, the seen ones by
    (|D - C|, position), the first k, then by (D, position)."""
    competence = api.get_state(run_id).competence
    seen = [
        (pos, info)
        for pos, info in enumerate(api.get_prompt(run_id, pid) for pid in ids)
        if info.updates > 0
    ]
    nearest = sorted(seen, key=lambda item: (abs(item[1].difficulty - competence), item[0]))[:k]
    return [info for _, info in sorted(nearest, key=lambda item: (item[1].difficulty, item[0]))]


IDS = [str(i) for i in range(N)]


# ---------------------------------------------------------------- the answer itself
def test_frontier_is_the_k_seen_prompts_nearest_the_competence(coord: cdas.Coordinator) -> None:
    train(coord, "r")
    plain = coord.get_state("r")
    seen = plain.seen
    assert 0 < seen <= STEPS * BATCH < N  # some prompts were never trained
    unseen = {pid for pid in IDS if coord.get_prompt("r", pid).updates == 0}
    assert len(unseen) == N - seen
    assert plain.frontier == []
    assert coord.get_state("r", frontier=0).frontier == []
    for k in (1, 2, 5, 17, seen - 1, seen, seen + 1, N, 1000):
        state = coord.get_state("r", frontier=k)
        expected = brute_frontier(coord, "r", IDS, k)
        assert len(expected) == min(k, seen)
        assert state.frontier == expected, k
        assert not unseen & {p.prompt_id for p in state.frontier}
        difficulties = [p.difficulty for p in state.frontier]
        assert difficulties == sorted(difficulties)
        # the frontier is an addition: everything else is the plain state
        assert dataclasses.replace(state, frontier=[]) == plain
    # the K nearest: no prompt left out is nearer C than one chosen
    state = coord.get_state("r", frontier=10)
    chosen = {p.prompt_id for p in state.frontier}
    worst = max(abs(p.difficulty - state.competence) for p in state.frontier)
    for pid in set(IDS) - unseen - chosen:
        assert abs(coord.get_prompt("r", pid).difficulty - state.competence) >= worst


def test_frontier_without_results_is_empty_and_grows_with_them(coord: cdas.Coordinator) -> None:
    coord.put_run("r", prompts=30, seed=1)
    batch = coord.next_batch("r", 0, 5)  # issued but without results: still unseen
    assert coord.get_state("r", frontier=1000).frontier == []
    first = batch.prompt_ids[0]
    coord.report_results("r", 0, [{"prompt_id": first, "correct": 2, "total": 8}])
    (only,) = coord.get_state("r", frontier=1000).frontier
    assert only == coord.get_prompt("r", first)
    assert (only.updates, only.last_pass_rate, only.last_step) == (1, 0.25, 0)
    coord.report_results(
        "r", 0, [{"prompt_id": p, "correct": 6, "total": 8} for p in batch.prompt_ids]
    )
    state = coord.get_state("r", frontier=3)
    assert state.frontier == brute_frontier(coord, "r", [str(i) for i in range(30)], 3)
    assert {p.prompt_id for p in state.frontier} <= set(batch.prompt_ids)


@pytest.mark.parametrize("n", [39, 1200])
def test_ties_at_the_cut_are_taken_in_prompt_order(coord: cdas.Coordinator, n: int) -> None:
    """Prompts trained in one report at one competence with one pass rate share one D: at the
    cut, the frontier takes the lowest indexes (``RunEngine.frontier``). Three interleaved
    groups: D = 0.125, 0, -0.125, so C = 0 and the first and last groups tie at 0.125."""
    coord.put_run("r", prompts=n + 3)
    coord.report_results(
        "r", 0, [{"prompt_id": str(i), "correct": 3 + i % 3, "total": 8} for i in range(n)]
    )
    state = coord.get_state("r", frontier=3)
    assert state.competence == 0.0
    assert [p.prompt_id for p in state.frontier] == ["1", "4", "7"]
    third = n // 3
    k = third + third // 2  # every D = 0, then half of the tied others
    state = coord.get_state("r", frontier=k)
    ids = [str(i) for i in range(n + 3)]
    assert state.frontier == brute_frontier(coord, "r", ids, k)
    tied = [int(p.prompt_id) for p in state.frontier if p.difficulty != 0.0]
    assert sorted(tied) == sorted(i for i in range(n) if i % 3 != 1)[: k - third]


CU_IDS = [f"q{i:02d}" for i in range(24)]
CU_LABELS = {pid: float(1 + i % 5) for i, pid in enumerate(CU_IDS)}


def train_curriculum(api: Any, run_id: str) -> None:
    """A curriculum run of 24 labelled prompts, 4 steps of 5."""
    api.put_run(
        run_id,
        strategy="curriculum",
        params={"schedule": [{"until_step": 2}, {"min_label": 3}]},
        seed=4,
        prompts=CU_IDS,
        labels=CU_LABELS,
    )
    for step in range(4):
        batch = api.next_batch(run_id, step, 5)
        api.report_results(
            run_id,
            step,
            [
                {"prompt_id": p, "correct": (step + k) % 9, "total": 8}
                for k, p in enumerate(batch.prompt_ids)
            ],
        )


def test_curriculum_frontier_carries_the_labels(coord: cdas.Coordinator) -> None:
    ids, labels = CU_IDS, CU_LABELS
    train_curriculum(coord, "cu")
    state = coord.get_state("cu", frontier=1000)
    assert state.frontier == brute_frontier(coord, "cu", ids, 1000)
    assert len(state.frontier) == state.seen > 5
    assert all(p.label == labels[p.prompt_id] for p in state.frontier)
    # a run without labels lists None
    coord.put_run("plain", prompts=5)
    coord.report_results("plain", 0, [{"prompt_id": "1", "correct": 1, "total": 4}])
    (plain,) = coord.get_state("plain", frontier=5).frontier
    assert plain.label is None


# ---------------------------------------------------------------- stores
def test_memory_and_redis_give_identical_states(redis_server: RedisServer) -> None:
    redis_store = cdas.RedisStore(f"redis://127.0.0.1:{redis_server.port}/15")
    redis_store.client.flushdb()
    try:
        stores: list[cdas.Store] = [cdas.MemoryStore(), redis_store]
        coords = [cdas.Coordinator(store) for store in stores]
        for c in coords:
            train(c, "r", seed=3)
        memory, redis = coords
        for k in (0, 1, 9, 40, 1000):
            a, b = memory.get_state("r", frontier=k), redis.get_state("r", frontier=k)
            assert a.to_dict() == b.to_dict(), k
            assert a == b
        # the stores' own reads: the history left out on request, nothing else changed
        for store in stores:
            full = store.transact("r", Operation("get_state", lambda e: e.state(7, True)))
            light = store.transact("r", Operation("get_state", lambda e: e.state(7, False)))
            assert full.history
            assert light.history == []
            assert dataclasses.replace(full, history=[]) == light
            assert full == memory.get_state("r", frontier=7)
    finally:
        redis_store.client.flushdb()
        redis_store.close()


# ---------------------------------------------------------------- the doors
@pytest.fixture
def served(coord: cdas.Coordinator) -> Iterator[tuple[cdas.Coordinator, Service]]:
    train(coord, "r", seed=7)
    train_curriculum(coord, "cu")
    with running_service(coord) as service:
        yield coord, service


def test_library_rest_and_grpc_give_equal_states(
    served: tuple[cdas.Coordinator, Service],
) -> None:
    coord, service = served
    url = rest_url(service.bound)

    async def via_async(run_id: str, k: int) -> RunState:
        async with AsyncRestClient(url) as client:
            return await client.get_state(run_id, k)

    with RestClient(url) as rest, GrpcClient(grpc_target(service.bound)) as rpc:
        for run_id in ("r", "cu"):
            for k in (0, 1, 7, 1000):
                library = coord.get_state(run_id, frontier=k)
                assert len(library.frontier) == min(k, library.seen)
                assert rest.get_state(run_id, k) == library, (run_id, k)
                assert rpc.get_state(run_id, k) == library, (run_id, k)
                assert asyncio.run(via_async(run_id, k)) == library, (run_id, k)
                assert rest.get_state(run_id, frontier=k).to_dict() == library.to_dict()
            assert rest.get_state(run_id) == coord.get_state(run_id)
            assert rpc.get_state(run_id) == coord.get_state(run_id)
        labelled = rpc.get_state("cu", 1000).frontier
        assert labelled
        assert [p.label for p in labelled] == [CU_LABELS[p.prompt_id] for p in labelled]
    # the raw JSON: "frontier" is there, [] without the parameter, prompts with their six keys
    with httpx.Client(base_url=url) as http:
        body = http.get("/v1/runs/r/state").json()
        assert body["frontier"] == []
        body = http.get("/v1/runs/r/state", params={"frontier": 4}).json()
        assert [set(p) for p in body["frontier"]] == [PROMPT_KEYS] * 4
        assert body == coord.get_state("r", frontier=4).to_dict()
        body = http.get("/v1/runs/cu/state", params={"frontier": 1000}).json()
        assert [p["label"] for p in body["frontier"]] == [
            CU_LABELS[p["prompt_id"]] for p in body["frontier"]
        ]
        missing = http.get("/v1/runs/nope/state", params={"frontier": 4})
        assert_rest_error(missing, "run_not_found", "nope")


@pytest.mark.parametrize("value", ["-1", "1001", "x", "1.5", "", "true", "99999999999999999999"])
def test_rest_frontier_out_of_range_is_invalid_argument(
    served: tuple[cdas.Coordinator, Service], value: str
) -> None:
    coord, service = served
    before = logical_state(coord, "r")
    with httpx.Client(base_url=rest_url(service.bound)) as http:
        response = http.get("/v1/runs/r/state", params={"frontier": value})
        error = assert_rest_error(response, "invalid_argument", "frontier")
        assert response.status_code == 422
        assert error["details"]["field"] == "frontier"
        ok = http.get("/v1/runs/r/state", params={"frontier": 1000})
        assert ok.status_code == 200
    assert_same_state(logical_state(coord, "r"), before)


def test_frontier_out_of_range_is_refused_by_the_library_the_clients_and_grpc(
    served: tuple[cdas.Coordinator, Service],
) -> None:
    coord, service = served
    before = logical_state(coord, "r")
    bad: list[Any] = [-1, 1001, True, 2.0, "3", None]
    for value in bad:
        with pytest.raises(cdas.InvalidArgumentError, match="frontier") as info:
            coord.get_state("r", frontier=value)
        assert info.value.details["field"] == "frontier"
    with (
        RestClient(rest_url(service.bound)) as rest,
        GrpcClient(grpc_target(service.bound)) as rpc,
        grpc.insecure_channel(grpc_target(service.bound)) as channel,
    ):
        for client in (rest, rpc):
            for value in (-1, 1001):
                with pytest.raises(cdas.InvalidArgumentError, match="frontier") as info:
                    client.get_state("r", value)
                assert info.value.details["field"] == "frontier"
        stub = stub_of(channel)
        for value in (-1, 1001, -(2**63)):
            request = pb.GetStateRequest(run_id="r", frontier=value)
            failure = grpc_failure(partial(stub.GetState, request, timeout=10))
            details = assert_grpc_error(failure, "invalid_argument", "frontier")
            assert details["field"] == "frontier"
        answer = stub.GetState(pb.GetStateRequest(run_id="r", frontier=1000), timeout=10)
        assert len(answer.frontier) == coord.get_state("r").seen
        assert rpc.get_state("r", 1000) == coord.get_state("r", frontier=1000)
    assert_same_state(logical_state(coord, "r"), before)


def test_history_from_gives_the_tail_of_the_history(coord: cdas.Coordinator) -> None:
    """``history_from=S``: the history entries of steps >= S, equal to the whole history's tail;
    everything else in the state is unchanged (the page polls only the steps it has not seen)."""
    train(coord, "r")
    whole = coord.get_state("r", frontier=5)
    assert [h.step for h in whole.history] == list(range(STEPS))
    for start in (0, 1, STEPS - 1, STEPS, 10**6):
        tail = coord.get_state("r", frontier=5, history_from=start)
        assert tail.history == [h for h in whole.history if h.step >= start]
        assert dataclasses.replace(tail, history=whole.history) == whole


def test_history_from_is_the_same_over_every_door() -> None:
    coordinator = cdas.Coordinator(cdas.MemoryStore())
    train(coordinator, "r")
    expected = coordinator.get_state("r", frontier=3, history_from=4)
    assert [h.step for h in expected.history] == [4, 5]
    with running_service(coordinator) as service:
        with RestClient(rest_url(service.bound)) as rest:
            assert rest.get_state("r", 3, history_from=4) == expected
        with GrpcClient(grpc_target(service.bound)) as rpc:
            assert rpc.get_state("r", 3, history_from=4) == expected
        for bad in ("-1", "x", "2147483648"):
            answer = httpx.get(f"{rest_url(service.bound)}/v1/runs/r/state?history_from={bad}")
            assert_rest_error(answer, "invalid_argument")
            assert answer.json()["error"]["details"]["field"] == "history_from"
    with pytest.raises(cdas.InvalidArgumentError, match="history_from"):
        coordinator.get_state("r", history_from=-1)
