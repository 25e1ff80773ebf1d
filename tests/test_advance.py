"""The one-call step, ``advance(run, n, results, size)``, on every door (the library,
``RestClient`` and ``AsyncRestClient`` against a real service, ``GrpcClient``) and both stores:
it answers what ``report_results(run, n, results)`` then ``next_batch(run, n + 1, size)`` answer,
a run trained by it ends in the state of the same run trained by the two calls, a retry answers
the same batch and counts the results as duplicates, and a request either call would refuse
changes nothing (its results are not applied) and is refused with that call's error."""

from __future__ import annotations

import asyncio
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

import cdas
from cdas.client import AsyncRestClient, GrpcClient, RestClient, RetryPolicy
from cdas.core.results import ParsedResults, parse_results
from cdas.core.views import Advance
from cdas.rpc import messages as wire
from cdas.v1 import coordinator_pb2 as pb
from tests.conftest import assert_same_state, logical_state
from tests.redis_servers import RedisServer
from tests.services import grpc_target, rest_url, running_service

N, B = 30, 6
"""A run's prompts and its batch size: tiny, so each test takes well under a second."""

DOORS = ["library", "rest", "async-rest", "grpc"]


class Blocking:
    """An ``AsyncRestClient``'s methods as blocking calls, run on its own event loop thread."""

    def __init__(self, url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.client = self._run(self._make(url))

    async def _make(self, url: str) -> AsyncRestClient:
        return AsyncRestClient(url, retry=RetryPolicy(attempts=1))

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=60)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.client, name)
        return lambda *args, **kwargs: self._run(method(*args, **kwargs))

    def close(self) -> None:
        self._run(self.client.aclose())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@dataclass
class Deployment:
    library: cdas.Coordinator
    doors: dict[str, Any]


@pytest.fixture(scope="module", params=["memory", "redis"])
def deployment(request: pytest.FixtureRequest) -> Iterator[Deployment]:
    """One coordinator per store kind, served (REST and gRPC) for the module; every test makes
    runs of its own."""
    store: cdas.Store
    if request.param == "memory":
        store = cdas.MemoryStore()
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        redis_store = cdas.RedisStore(f"redis://127.0.0.1:{server.port}/14")
        redis_store.client.flushdb()
        store = redis_store
    library = cdas.Coordinator(store)
    once = RetryPolicy(attempts=1)
    with (
        running_service(library) as service,
        RestClient(rest_url(service.bound), retry=once) as rest,
        GrpcClient(grpc_target(service.bound), retry=once) as over_grpc,
    ):
        blocking = Blocking(rest_url(service.bound))
        try:
            yield Deployment(
                library,
                {"library": library, "rest": rest, "async-rest": blocking, "grpc": over_grpc},
            )
        finally:
            blocking.close()
    if isinstance(store, cdas.RedisStore):
        store.client.flushdb()
        store.close()


def _results(step: int, ids: list[str], form: str = "mixed") -> list[dict[str, Any]]:
    """Deterministic results; ``counts`` only (the gRPC client sends them as columns) or every
    form in turn (sent as messages)."""
    out: list[dict[str, Any]] = []
    for n, pid in enumerate(ids):
        k = zlib.crc32(f"{step}:{pid}".encode()) % 9
        kind = "counts" if form == "counts" else ("counts", "rewards", "pass_rate")[n % 3]
        if kind == "counts":
            out.append({"prompt_id": pid, "correct": k, "total": 8})
        elif kind == "rewards":
            out.append({"prompt_id": pid, "rewards": [1.0] * k + [0.0] * (8 - k)})
        else:
            out.append({"prompt_id": pid, "pass_rate": k / 8, "total": 8})
    return out


def _as(run_id: str, value: Any) -> dict[str, Any]:
    """An answer as a dict under another run's id (twin runs differ in their ids only)."""
    data: dict[str, Any] = value.to_dict()
    if isinstance(value, Advance):
        data["batch"]["run_id"] = run_id
    elif "run_id" in data:
        data["run_id"] = run_id
    return data


def _renamed(state: tuple[dict[str, Any], dict[str, Any]], run_id: str) -> Any:
    meta, arrays = state
    return {**meta, "run_id": run_id}, arrays


def _error(exc: cdas.CdasError) -> tuple[str, str, str, dict[str, Any]]:
    return type(exc).__name__, exc.code, exc.message, dict(exc.details)


# ---------------------------------------------------------------------------- the same answers


@pytest.mark.parametrize("door", DOORS)
def test_a_run_trained_by_advance_ends_as_the_run_trained_by_the_two_calls(
    deployment: Deployment, door: str
) -> None:
    api, library = deployment.doors[door], deployment.library
    one, two = f"one-{door}", f"two-{door}"
    for run_id in (one, two):
        library.put_run(run_id, strategy="cdas", seed=5, prompts=N)
    batch = api.next_batch(one, 0, B)
    twin = library.next_batch(two, 0, B)
    assert _as(two, batch) == twin.to_dict()
    for step in range(8):
        ids = batch.prompt_ids[: B - 1]  # a rank's results missing: those prompts wait
        if step == 3:
            ids = [*ids, next(str(k) for k in range(N) if str(k) not in batch.prompt_ids)]
            # and a result from outside the batch
        results = _results(step, ids, "counts" if step % 2 else "mixed")
        answer = api.advance(one, step, results, B)
        assert isinstance(answer, Advance)
        report = library.report_results(two, step, results)
        twin = library.next_batch(two, step + 1, B)
        assert _as(two, answer) == Advance(report, twin).to_dict(), step
        assert (answer.batch.step, answer.batch.round) == (step + 1, 0)
        batch = answer.batch
    assert_same_state(_renamed(logical_state(library, one), two), logical_state(library, two))


@pytest.mark.parametrize("door", DOORS)
def test_a_retried_advance_answers_the_same_batch_and_applies_nothing_twice(
    deployment: Deployment, door: str
) -> None:
    api, library = deployment.doors[door], deployment.library
    run_id = f"retried-{door}"
    library.put_run(run_id, seed=2, prompts=N)
    batch = api.next_batch(run_id, 0, B)
    results = _results(0, batch.prompt_ids)
    half = api.advance(run_id, 0, results[:3], B)  # a rank posts half, and a retry posts all
    assert (half.report.applied, half.report.duplicates) == (3, 0)
    first = api.advance(run_id, 0, results, B)
    assert (first.report.applied, first.report.duplicates) == (B - 3, 3)
    assert first.batch == half.batch  # step 1's batch, issued by the first call
    meta, arrays = logical_state(library, run_id)

    again = api.advance(run_id, 0, results, B)
    assert again.batch == first.batch
    assert (again.report.applied, again.report.duplicates) == (0, B)
    assert again.report.competence == first.report.competence
    after_meta, after_arrays = logical_state(library, run_id)
    assert after_meta["counts"]["duplicates"] == meta["counts"]["duplicates"] + B
    assert after_meta["counts"]["results"] == meta["counts"]["results"] == B
    counts = {**after_meta["counts"], "duplicates": meta["counts"]["duplicates"]}
    assert_same_state(({**after_meta, "counts": counts}, after_arrays), (meta, arrays))
    assert library.next_batch(run_id, 1, B) == first.batch


# ---------------------------------------------------------------------------- refusals

Refusal = Callable[[Any, str, list[str]], tuple[Callable[[], Any], Callable[[], Any]]]
"""(door, run id, step 0's batch) -> (the refused advance, the single call that refuses it)."""


def _unknown_prompt(api: Any, run_id: str, ids: list[str]) -> Any:
    results = [*_results(0, ids[:2]), {"prompt_id": "nope", "correct": 1, "total": 8}]
    return (
        lambda: api.advance(run_id, 0, results, B),
        lambda: api.report_results(run_id, 0, results),
    )


def _correct_above_total(api: Any, run_id: str, ids: list[str]) -> Any:
    results = [*_results(0, ids[:1], "counts"), {"prompt_id": ids[1], "correct": 9, "total": 8}]
    return (
        lambda: api.advance(run_id, 0, results, B),
        lambda: api.report_results(run_id, 0, results),
    )


def _size_of_an_issued_batch(api: Any, run_id: str, ids: list[str]) -> Any:
    api.next_batch(run_id, 1, B)  # another rank already took step 1's batch
    return (
        lambda: api.advance(run_id, 0, _results(0, ids), B + 1),
        lambda: api.next_batch(run_id, 1, B + 1),
    )


def _larger_than_the_run(api: Any, run_id: str, ids: list[str]) -> Any:
    return (
        lambda: api.advance(run_id, 0, _results(0, ids, "counts"), N + 1),
        lambda: api.next_batch(run_id, 1, N + 1),
    )


REFUSALS: dict[str, tuple[Refusal, type[cdas.CdasError], str, str]] = {
    # what, the error, its field (or detail) and the value it names
    "unknown prompt id": (_unknown_prompt, cdas.InvalidArgumentError, "results[2]", "'nope'"),
    "correct above total": (_correct_above_total, cdas.InvalidArgumentError, "results[1]", "9"),
    "size of an issued batch": (_size_of_an_issued_batch, cdas.ConflictError, "step 1", "7"),
    "size larger than the run": (_larger_than_the_run, cdas.InvalidArgumentError, "size", "31"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
@pytest.mark.parametrize("door", DOORS)
def test_a_refused_advance_changes_nothing_and_names_the_bad_value(
    deployment: Deployment, door: str, case: str
) -> None:
    api, library = deployment.doors[door], deployment.library
    make, error, field, value = REFUSALS[case]
    run_id = f"refused-{door}-{case.replace(' ', '-')}"
    library.put_run(run_id, seed=3, prompts=N)
    ids = api.next_batch(run_id, 0, B).prompt_ids
    advance, single = make(api, run_id, ids)
    before = library.snapshot(run_id)
    with pytest.raises(error) as refused:
        advance()
    assert library.snapshot(run_id) == before
    assert library.get_run(run_id).results == 0  # the results were not applied
    assert all(library.get_prompt(run_id, p).updates == 0 for p in ids)
    assert field in refused.value.message
    assert value in refused.value.message
    with pytest.raises(error) as alone:  # the single call's own words, code and details
        single()
    assert _error(refused.value) == _error(alone.value)
    assert library.snapshot(run_id) == before


# ---------------------------------------------------------------------------- the wire


def test_grpc_sends_correct_total_results_as_columns_as_report_results_does() -> None:
    """One rule for both requests (``wire.results_fields``); the server reads both alike, and
    reads columns straight into the parse the dicts would have given."""

    def parsed(value: Any) -> tuple[Any, ...]:
        p = value if isinstance(value, ParsedResults) else parse_results(value)
        rates = p.pass_rates(0.5)
        return (p.prompt_ids, rates.tolist(), p.total.tolist(), p.zero_gradient.tolist())

    counts = _results(0, ["1", "2", "3"], "counts")
    mixed = _results(0, ["1", "2", "3"])
    for results, kind in ((counts, "columns"), (mixed, "results"), ([], "results")):
        fields = wire.results_fields(results)
        assert list(fields) == [kind]
        report = pb.ReportResultsRequest(run_id="r", step=0, **fields)
        advance = pb.AdvanceRequest(run_id="r", step=0, size=2, **fields)
        as_read = [wire.results_value(request) for request in (report, advance)]
        assert isinstance(as_read[0], ParsedResults) == (kind == "columns")
        assert parsed(as_read[0]) == parsed(as_read[1]) == parsed(results)


def test_the_last_step_cannot_advance_and_the_error_names_it() -> None:
    """Step 2**31 - 1 has no step after it: the refusal names the step sent, not step + 1."""
    library = cdas.Coordinator(cdas.MemoryStore())
    library.put_run("r", prompts=4)
    with pytest.raises(cdas.InvalidArgumentError) as refused:
        library.advance("r", 2**31 - 1, [], 1)
    assert refused.value.details == {"field": "step", "value": "2147483647"}
    assert "[0, 2147483646]" in refused.value.message
