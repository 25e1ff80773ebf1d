"""The three front doors give the same answers: the library (``cdas.Coordinator``), REST
(``RestClient`` against a real service, and ``AsyncRestClient`` over the ASGI app in process) and
gRPC (``GrpcClient``), on every store; two ``cdas serve`` processes sharing one Redis answer as one
library coordinator does; a snapshot taken and restored over either door continues exactly as the
original run."""

from __future__ import annotations

import asyncio
import json
import threading
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import grpc
import httpx
import pytest

import cdas
from cdas.client import AsyncRestClient, GrpcClient, RestClient
from cdas.core import snapshot as snapshot_format
from cdas.rpc.messages import SNAPSHOT_CHUNK
from cdas.service.rest.app import create_app
from cdas.v1 import coordinator_pb2 as pb
from cdas.v1 import coordinator_pb2_grpc as pb_grpc
from tests.conftest import StoreFactory, assert_same_state, comparable, logical_state
from tests.redis_servers import RedisServer
from tests.services import grpc_target, rest_url, running_service, serve_process

# ---------------------------------------------------------------------------- recording answers


def _error(exc: cdas.CdasError) -> tuple[str, str, str, Any]:
    details = json.loads(json.dumps(exc.details, default=str))
    return ("error", type(exc).__name__, exc.message, details)


class Recorder:
    """Calls one door's methods and records every answer (or typed error) in ``log``."""

    def __init__(self, api: Any) -> None:
        self.api = api
        self.log: list[tuple[str, Any]] = []

    def ok(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """A call that must succeed (its answer drives the scenario)."""
        try:
            value = getattr(self.api, name)(*args, **kwargs)
        except cdas.CdasError as exc:
            self.log.append((name, _error(exc)))
            raise AssertionError(f"{name}{args} failed: {_error(exc)}") from exc
        self.log.append((name, comparable(value)))
        return value

    def attempt(self, name: str, *args: Any, **kwargs: Any) -> None:
        """A call whose answer or error is recorded (the error probes)."""
        try:
            value = getattr(self.api, name)(*args, **kwargs)
        except cdas.CdasError as exc:
            self.log.append((name, _error(exc)))
            return
        self.log.append((name, comparable(value)))


def assert_same_log(expected: list[tuple[str, Any]], got: list[tuple[str, Any]], door: str) -> None:
    for i, (a, b) in enumerate(zip(expected, got, strict=False)):
        assert a == b, f"{door}: answer {i} ({a[0]}) differs:\nlibrary: {a}\n{door}: {b}"
    assert len(expected) == len(got), door


# ---------------------------------------------------------------------------- the scenario


def _k(step: int, prompt_id: str, g: int = 8) -> int:
    """A deterministic number of correct answers out of ``g`` for (step, prompt)."""
    return zlib.crc32(f"{step}:{prompt_id}".encode()) % (g + 1)


def _results(step: int, ids: list[str], form: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for n, pid in enumerate(ids):
        k = _k(step, pid)
        kind = ("counts", "rewards", "pass_rate")[n % 3] if form == "mixed" else form
        if kind == "counts":
            out.append({"prompt_id": pid, "correct": k, "total": 8})
        elif kind == "rewards":
            out.append({"prompt_id": pid, "rewards": [1.0] * k + [0.25] * (8 - k)})
        else:
            out.append({"prompt_id": pid, "pass_rate": k / 8, "total": 8})
    return out


CD_IDS = [f"c-{i}" for i in range(84)] + ["dir/file#3", "ü-7", "with space", "q?x=1&y=%2F"]
CU_IDS = [f"cu-{i}" for i in range(50)]
SCHEDULE = [{"until_step": 2, "max_label": 2}, {"until_step": 4, "max_label": 4}, {}]


def scenario(r: Recorder) -> None:
    """Every operation of the contract, with its error cases, on four strategies."""
    # runs: created, found again, conflicting, refused
    r.ok("put_run", "cd", strategy="cdas", params={"warmup": True}, seed=11, prompts=CD_IDS[:30])
    r.ok("add_prompts", "cd", CD_IDS[30:60])
    r.ok("add_prompts", "cd", CD_IDS[60:])
    r.attempt(
        "put_run", "cd", strategy="cdas", params={"warmup": True}, seed=11, prompts=CD_IDS[:30]
    )
    r.attempt("put_run", "cd", strategy="random", seed=11, prompts=CD_IDS[:30])
    r.attempt("add_prompts", "cd", ["c-3", "new-1"])
    r.attempt("add_prompts", "cd", ["new-2", "new-2"])
    r.ok(
        "put_run",
        "dy",
        strategy="dynamic",
        params={"max_rounds": 3},
        seed=5,
        prompts=100,
    )
    labels = {pid: float(1 + i % 5) for i, pid in enumerate(CU_IDS[:40])}
    r.ok(
        "put_run",
        "cu",
        strategy="curriculum",
        params={"schedule": SCHEDULE},
        seed=3,
        prompts=CU_IDS[:40],
        labels=labels,
    )
    r.ok("add_prompts", "cu", CU_IDS[40:], labels=[float(1 + i % 5) for i in range(10)])
    r.ok("put_run", "pri", strategy="prioritized", seed=9, prompts=40)
    r.ok("add_prompts", "pri", 24)
    r.ok("put_run", "adv", strategy="cdas", seed=13, prompts=60)
    r.attempt("put_run", "bad", strategy="nope", prompts=10)
    r.attempt("put_run", "bad", strategy="cdas", params={"bogus": 1}, prompts=10)
    r.attempt("put_run", "bad id!", strategy="cdas", prompts=10)
    r.attempt("put_run", "bad", strategy="dynamic", params={"max_rounds": 0}, prompts=10)
    r.attempt("put_run", "bad", strategy="curriculum", prompts=["a", "b"], labels={"a": 1.0})
    r.ok("list_runs")

    advanced = r.ok("next_batch", "adv", 0, 10)
    for step in range(5):
        # cdas: counts; a retry of the batch and of the results; results from outside the batch
        batch = r.ok("next_batch", "cd", step, 16)
        again = r.ok("next_batch", "cd", step, 16)
        assert again.prompt_ids == batch.prompt_ids
        outside = [p for p in CD_IDS if p not in batch.prompt_ids][step : step + 2]
        first = _results(step, batch.prompt_ids[:8] + outside, "counts")
        r.ok("report_results", "cd", step, first)
        outcome = r.ok("report_results", "cd", step, first)
        assert outcome.applied == 0
        assert outcome.duplicates == len(first)
        r.ok("report_results", "cd", step, _results(step, batch.prompt_ids[7:], "counts"))
        for pid in batch.prompt_ids[:2] + outside[:1]:
            r.ok("get_prompt", "cd", pid)

        # dynamic: rounds of one step, rewards
        for round_, size in enumerate((24, 12, 6)):
            got = r.ok("next_batch", "dy", step, size, round_)
            r.ok("report_results", "dy", step, _results(step, got.prompt_ids, "rewards"))
        r.attempt("next_batch", "dy", step, 4, 3)

        # curriculum: pass rates
        got = r.ok("next_batch", "cu", step, 10)
        r.ok("report_results", "cu", step, _results(step, got.prompt_ids, "pass_rate"))
        r.ok("get_prompt", "cu", got.prompt_ids[0])

        # prioritized: every form in one request
        got = r.ok("next_batch", "pri", step, 12)
        r.ok("report_results", "pri", step, _results(step, got.prompt_ids, "mixed"))

        # the one-call step: counts (gRPC columns) and every form in turn; a retry
        results = _results(step, advanced.prompt_ids, "mixed" if step % 2 else "counts")
        answer = r.ok("advance", "adv", step, results, 10)
        again = r.ok("advance", "adv", step, results, 10)
        assert again.batch == answer.batch
        advanced = answer.batch

        r.ok("get_state", "cd")
        r.ok("get_run", "dy")
        r.ok("get_state", "cu")

    # the typed errors
    r.attempt("next_batch", "cd", 4, 17)  # same (step, round), another size
    r.attempt("next_batch", "cd", -1, 4)
    r.attempt("next_batch", "cd", 9, 0)
    r.attempt("next_batch", "cd", 9, 1000)
    r.attempt("next_batch", "cd", 9, 4, -1)
    r.attempt("next_batch", "nope", 0, 4)
    r.attempt("report_results", "cd", 4, [{"prompt_id": "c-0", "pass_rate": 1.5, "total": 8}])
    r.attempt("report_results", "cd", 4, [{"prompt_id": "c-0", "pass_rate": -0.5, "total": 8}])
    r.attempt("report_results", "cd", 4, [{"prompt_id": "nope", "correct": 1, "total": 8}])
    r.attempt("report_results", "cd", 4, [{"prompt_id": "c-0", "correct": 9, "total": 8}])
    r.attempt("report_results", "cd", 4, [{"prompt_id": "c-0", "correct": 1, "total": 0}])
    r.attempt("report_results", "cd", 4, [{"prompt_id": "c-0", "rewards": [1.0, float("nan")]}])
    r.attempt(
        "report_results", "cd", 4, [{"prompt_id": "c-0", "pass_rate": float("nan"), "total": 4}]
    )
    r.attempt("report_results", "cd", 4, [{"prompt_id": "c-0", "correct": 1}])
    r.attempt("report_results", "cd", 4, [{"prompt_id": "c-0"}])
    r.attempt("report_results", "cd", 4, [{"prompt_id": "c-0", "correct": 1, "rewards": [1.0]}])
    r.attempt(
        "report_results",
        "cd",
        4,
        [
            {"prompt_id": "c-1", "correct": 1, "total": 8},
            {"prompt_id": "c-1", "correct": 2, "total": 8},
        ],
    )
    r.attempt("report_results", "cd", -2, [{"prompt_id": "c-0", "correct": 1, "total": 8}])
    r.attempt("report_results", "nope", 0, [{"prompt_id": "c-0", "correct": 1, "total": 8}])
    one = [{"prompt_id": "1", "correct": 1, "total": 8}]
    r.attempt("advance", "adv", 4, [*one, {"prompt_id": "nope", "correct": 1, "total": 8}], 10)
    r.attempt("advance", "adv", 4, [*one, {"prompt_id": "2", "correct": 9, "total": 8}], 10)
    r.attempt("advance", "adv", 4, [*one, {"prompt_id": "2", "rewards": [1.0, float("nan")]}], 10)
    r.attempt("advance", "adv", 4, one, 11)  # step 5's batch was issued with size 10
    r.attempt("advance", "adv", 5, one, 61)
    r.attempt("advance", "adv", 5, one, 0)
    r.attempt("advance", "adv", -1, one, 10)
    r.attempt("advance", "nope", 0, one, 10)
    r.attempt("get_prompt", "cd", "missing")
    r.attempt("get_prompt", "cd", "x" * 300)
    r.attempt("get_prompt", "nope", "c-0")
    r.attempt("get_run", "nope")
    r.attempt("get_state", "nope")
    r.attempt("snapshot", "nope")
    r.attempt("restore", "broken", b"not a snapshot")
    r.attempt("delete_run", "nope")
    r.ok("get_run", "cd")  # the invalid requests changed nothing
    r.ok("get_state", "adv")

    # snapshot, restore under a new id, continue both identically
    data = r.ok("snapshot", "cd")
    r.ok("restore", "cd2", data)
    for step in range(5, 8):
        a = r.ok("next_batch", "cd", step, 12)
        b = r.ok("next_batch", "cd2", step, 12)
        assert a.prompt_ids == b.prompt_ids
        results = _results(step, a.prompt_ids, "mixed")
        oa = r.ok("report_results", "cd", step, results)
        ob = r.ok("report_results", "cd2", step, results)
        assert oa == ob
        r.ok("get_prompt", "cd", a.prompt_ids[0])
        r.ok("get_prompt", "cd2", a.prompt_ids[0])
    sa = r.ok("get_state", "cd").to_dict()
    sb = r.ok("get_state", "cd2").to_dict()
    assert {**sa, "run_id": "cd2"} == sb
    r.ok("snapshot", "cd2")

    # delete
    r.ok("delete_run", "pri")
    r.attempt("get_run", "pri")
    r.attempt("next_batch", "pri", 5, 4)
    r.ok("list_runs")


# ---------------------------------------------------------------------------- (a) three doors


def _library_log(store: cdas.Store) -> list[tuple[str, Any]]:
    recorder = Recorder(cdas.Coordinator(store))
    scenario(recorder)
    return recorder.log


def test_the_three_doors_give_the_same_answers(make_store: StoreFactory) -> None:
    expected = _library_log(make_store())
    assert sum(1 for _, v in expected if isinstance(v, tuple) and v[0] == "error") >= 25

    with (
        running_service(cdas.Coordinator(make_store())) as service,
        RestClient(rest_url(service.bound)) as client,
    ):
        rest = Recorder(client)
        scenario(rest)
    assert_same_log(expected, rest.log, "REST")

    with (
        running_service(cdas.Coordinator(make_store())) as service,
        GrpcClient(grpc_target(service.bound)) as grpc_client,
    ):
        over_grpc = Recorder(grpc_client)
        scenario(over_grpc)
    assert_same_log(expected, over_grpc.log, "gRPC")


class _Blocking:
    """The async client's methods as blocking calls, each run on ``loop`` from a worker thread."""

    def __init__(self, client: AsyncRestClient, loop: asyncio.AbstractEventLoop) -> None:
        self._client = client
        self._loop = loop

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            return asyncio.run_coroutine_threadsafe(method(*args, **kwargs), self._loop).result()

        return call


def test_the_async_rest_client_in_process_gives_the_same_answers(
    make_store: StoreFactory,
) -> None:
    expected = _library_log(make_store())
    coordinator = cdas.Coordinator(make_store())

    async def main() -> list[tuple[str, Any]]:
        transport = httpx.ASGITransport(app=create_app(coordinator))
        async with AsyncRestClient("http://cdas.test", transport=transport) as client:
            recorder = Recorder(_Blocking(client, asyncio.get_running_loop()))
            await asyncio.to_thread(scenario, recorder)
            return recorder.log

    assert_same_log(expected, asyncio.run(main()), "AsyncRestClient")


# ---------------------------------------------------------------------------- (b) two processes


def _trainer(
    run_id: str, strategy: str, doors: Callable[[int], Any], steps: int
) -> list[tuple[str, Any]]:
    """A trainer whose every call may go to another door (``doors(k)`` for the k-th call)."""
    calls = iter(range(1_000_000))
    log: list[tuple[str, Any]] = []

    def call(name: str, *args: Any) -> Any:
        value = getattr(doors(next(calls)), name)(*args)
        log.append((name, comparable(value)))
        return value

    size = 12
    call("put_run", run_id, strategy, {"max_rounds": 2} if strategy == "dynamic" else None, 4, 300)
    for step in range(steps):
        rounds = 2 if strategy == "dynamic" else 1
        for round_ in range(rounds):
            batch = call("next_batch", run_id, step, size, round_)
            call("next_batch", run_id, step, size, round_)  # another rank asks too
            results = _results(step, batch.prompt_ids, "mixed")
            call("report_results", run_id, step, results[: size // 2])
            call("report_results", run_id, step, results)  # a retry: half are duplicates
        if step % 4 == 0:
            call("get_state", run_id)
            call("get_prompt", run_id, batch.prompt_ids[0])
    call("get_run", run_id)
    return log


def test_two_processes_on_one_redis_answer_as_one_library(redis_server: RedisServer) -> None:
    shared = f"redis://127.0.0.1:{redis_server.port}/12"
    reference_url = f"redis://127.0.0.1:{redis_server.port}/13"
    stores = [cdas.RedisStore(shared), cdas.RedisStore(reference_url)]
    for store in stores:
        store.client.flushdb()
    reference = cdas.Coordinator(stores[1])
    try:
        with (
            serve_process("--store", shared) as a,
            serve_process("--store", shared) as b,
            RestClient(a.url) as rest_a,
            RestClient(b.url) as rest_b,
            GrpcClient(a.target) as grpc_a,
            GrpcClient(b.target) as grpc_b,
        ):
            doors: list[Any] = [rest_a, grpc_b, grpc_a, rest_b]

            # one run, each call on the other process than the call before
            got = _trainer("solo", "cdas", lambda k: doors[k % 4], 12)
            expected = _trainer("solo", "cdas", lambda k: reference, 12)
            assert got == expected

            # two trainers at once, from threads, each alternating processes
            answers: dict[str, list[tuple[str, Any]]] = {}
            failures: list[BaseException] = []

            def train(run_id: str, strategy: str, offset: int) -> None:
                try:
                    answers[run_id] = _trainer(
                        run_id, strategy, lambda k: doors[(k + offset) % 4], 12
                    )
                except BaseException as exc:  # reported by the test thread
                    failures.append(exc)

            threads = [
                threading.Thread(target=train, args=("t1", "prioritized", 0)),
                threading.Thread(target=train, args=("t2", "dynamic", 1)),
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=120)
            assert not failures, failures
            assert answers["t1"] == _trainer("t1", "prioritized", lambda k: reference, 12)
            assert answers["t2"] == _trainer("t2", "dynamic", lambda k: reference, 12)

        shared_coordinator = cdas.Coordinator(stores[0])
        for run_id in ("solo", "t1", "t2"):
            assert_same_state(
                logical_state(shared_coordinator, run_id), logical_state(reference, run_id)
            )
        for line in a.lines + b.lines:
            assert line.get("level") != "error", line
    finally:
        for store in stores:
            store.client.flushdb()
            store.close()


# ---------------------------------------------------------------------------- (c) big snapshots


@contextmanager
def _both_clients(service: Any) -> Iterator[tuple[RestClient, GrpcClient]]:
    with RestClient(rest_url(service.bound)) as rest, GrpcClient(grpc_target(service.bound)) as g:
        yield rest, g


def _without_run_id(value: Any) -> Any:
    data = value.to_dict()
    data.pop("run_id", None)
    return data


@pytest.mark.slow
def test_a_big_snapshot_restored_over_rest_and_grpc_continues_as_the_original(
    make_store: StoreFactory,
) -> None:
    coordinator = cdas.Coordinator(make_store())
    size = 200_000
    coordinator.put_run("big", strategy="cdas", seed=21, prompts=size)
    for step in range(300):
        batch = coordinator.next_batch("big", step, 32)
        coordinator.report_results("big", step, _results(step, batch.prompt_ids, "counts"))

    with running_service(coordinator) as service, _both_clients(service) as (rest, over_grpc):
        original = logical_state(coordinator, "big")

        data = rest.snapshot("big")
        assert len(data) > 2 * SNAPSHOT_CHUNK
        restored = rest.restore("big-rest", data)
        assert restored.size == size
        assert restored.step == 299

        with grpc.insecure_channel(
            grpc_target(service.bound), options=[("grpc.max_receive_message_length", 1 << 28)]
        ) as channel:
            stub = pb_grpc.CoordinatorStub(channel)  # type: ignore[no-untyped-call]
            chunks = [c.data for c in stub.Snapshot(pb.SnapshotRequest(run_id="big"))]
        assert len(chunks) >= 3
        assert all(len(c) <= SNAPSHOT_CHUNK for c in chunks)
        assert_same_state(snapshot_format.decode(b"".join(chunks)), original)
        grpc_data = over_grpc.snapshot("big")
        assert_same_state(snapshot_format.decode(grpc_data), original)
        restored = over_grpc.restore("big-grpc", grpc_data)
        assert (restored.size, restored.step) == (size, 299)
        assert _without_run_id(rest.get_run("big-rest")) == _without_run_id(
            coordinator.get_run("big")
        )

        doors: list[tuple[str, Any]] = [("big", coordinator), ("big-rest", rest)]
        doors.append(("big-grpc", over_grpc))
        for step in range(300, 306):
            answers = []
            for run_id, door in doors:
                batch = door.next_batch(run_id, step, 32)
                results = _results(step, batch.prompt_ids, "mixed")
                results += [{"prompt_id": str(step * 7), "correct": 3, "total": 8}]
                outcome = door.report_results(run_id, step, results)
                prompt = door.get_prompt(run_id, batch.prompt_ids[-1])
                far = door.get_prompt(run_id, str(size - 1 - step))
                state = door.get_state(run_id)
                answers.append(
                    [
                        _without_run_id(batch),
                        outcome.to_dict(),
                        prompt.to_dict(),
                        far.to_dict(),
                        _without_run_id(state),
                    ]
                )
            assert answers[1] == answers[0], f"REST-restored run differs at step {step}"
            assert answers[2] == answers[0], f"gRPC-restored run differs at step {step}"
        final = logical_state(coordinator, "big")
        for run_id in ("big-rest", "big-grpc"):
            meta, arrays = logical_state(coordinator, run_id)
            assert meta.pop("run_id") == run_id
            assert_same_state(({**meta, "run_id": "big"}, arrays), final)


# ---------------------------------------------------------------------------- edge requests

R = "<run>"
"""Stands for the probe's own run id (created with 10 prompts first unless the probe creates it)."""

EDGE_PROBES: dict[str, tuple[str, tuple[Any, ...], dict[str, Any]]] = {
    "integral-float-param": (
        "put_run",
        (R,),
        {"strategy": "dynamic", "params": {"max_rounds": 3.0}, "prompts": 10},
    ),
    "bool-as-int-param": ("put_run", (R,), {"params": {"warmup": 1}, "prompts": 10}),
    "negative-seed": ("put_run", (R,), {"seed": -1, "prompts": 10}),
    "seed-beyond-int64": ("put_run", (R,), {"seed": 2**64, "prompts": 10}),
    "negative-count": ("put_run", (R,), {"prompts": -3}),
    "nan-label": (
        "put_run",
        (R,),
        {"strategy": "curriculum", "prompts": ["a"], "labels": {"a": float("nan")}},
    ),
    "label-of-unknown-prompt": (
        "put_run",
        (R,),
        {"strategy": "curriculum", "prompts": ["a"], "labels": {"b": 1.0}},
    ),
    "empty-prompt-id-in-ids": ("put_run", (R,), {"prompts": ["", "x"]}),
    "empty-run-id-put": ("put_run", ("",), {"prompts": 3}),
    "empty-run-id-get": ("get_run", ("",), {}),
    "empty-prompt-id-get": ("get_prompt", (R, ""), {}),
    "step-beyond-int32": ("next_batch", (R, 2**31, 2), {}),
    "step-beyond-int64": ("next_batch", (R, 2**63, 2), {}),
    "no-results": ("report_results", (R, 0, []), {}),
    "empty-rewards": ("report_results", (R, 0, [{"prompt_id": "1", "rewards": []}]), {}),
    "pass-rate-without-total": (
        "report_results",
        (R, 0, [{"prompt_id": "1", "pass_rate": 0.5}]),
        {},
    ),
    "unknown-result-field": (
        "report_results",
        (R, 0, [{"prompt_id": "1", "correct": 1, "total": 2, "extra": 1}]),
        {},
    ),
    "labels-list-of-wrong-length": ("add_prompts", (R, ["z"]), {"labels": [1.0, 2.0]}),
    "advance-no-results": ("advance", (R, 0, [], 2), {}),
    "advance-empty-rewards": ("advance", (R, 0, [{"prompt_id": "1", "rewards": []}], 2), {}),
    "advance-past-the-last-step": ("advance", (R, 2**31 - 1, [], 2), {}),
    "advance-size-beyond-int64": ("advance", (R, 0, [], 2**63), {}),
}


@pytest.fixture(scope="module")
def edge_doors() -> Iterator[dict[str, Any]]:
    with (
        running_service(cdas.Coordinator(cdas.MemoryStore())) as service,
        _both_clients(service) as (rest, over_grpc),
    ):
        yield {"REST": rest, "gRPC": over_grpc}


def _probe(api: Any, run_id: str, probe: str) -> list[Any]:
    name, args, kwargs = EDGE_PROBES[probe]
    answers: list[Any] = []
    if name != "put_run" and R in args:
        api.put_run(run_id, prompts=10)
    args = tuple(run_id if a == R else a for a in args)
    method = getattr(api, name)
    for call, call_args in ((method, args), (api.list_runs, ())):
        try:
            answers.append(comparable(call(*call_args, **(kwargs if call is method else {}))))
        except cdas.CdasError as exc:
            answers.append(_error(exc))
        except Exception as exc:  # a client must raise the library's typed errors only
            answers.append(("untyped error", type(exc).__name__, str(exc)))
    return answers


@pytest.mark.parametrize("door", ["REST", "gRPC"])
@pytest.mark.parametrize("probe", sorted(EDGE_PROBES))
def test_edge_requests_are_answered_as_the_library_does(
    edge_doors: dict[str, Any], door: str, probe: str
) -> None:
    """Odd but well-typed requests: the same answer, or the same typed error and message."""
    run_id = f"{probe}-{door}"
    library = cdas.Coordinator(cdas.MemoryStore())
    api = edge_doors[door]
    for other in api.list_runs():  # each probe sees only its own run, as the library does
        api.delete_run(other.run_id)
    expected = _probe(library, run_id, probe)
    got = _probe(api, run_id, probe)
    assert got == expected, f"{door} answers {probe} otherwise:\nlibrary: {expected}\n{door}: {got}"
