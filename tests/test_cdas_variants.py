"""The two CDAS variants (``cdas.core.strategies.cdas``): retirement of zero-gradient prompts with
retests (``retire_after``, ``retest_share``) and the floored update weight (``min_weight``).

Checked: bad values are refused on every door and create nothing; the defaults are the paper bit
for bit (against plain runs and an independent full-sort selection); retirement and retests
against an independent model of streaks, the retired set and the warm-up; retest draws uniform
(chi-square at alpha = 1e-4 with fixed seeds); D against a numpy recomputation of the moving
average; C = -mean D; both stores, snapshots and restores; the retired count on the state, the
doors, the metrics and in old snapshots and old Redis runs."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

import cdas
from cdas.client import GrpcClient, RestClient
from cdas.core import snapshot as fmt
from cdas.core.randomness import tie_keys
from cdas.store.redis.keys import RunKeys
from cdas.v1 import coordinator_pb2 as pb
from cdas.v1 import coordinator_pb2_grpc as pb_grpc
from tests.conftest import StoreFactory, assert_same_state, logical_state
from tests.prometheus_server import promtool
from tests.redis_servers import RedisServer
from tests.services import grpc_target, rest_url, running_service
from tests.test_metrics import scrape
from tests.test_service_errors import assert_grpc_error, assert_rest_error, grpc_failure, struct

ROOT = Path(__file__).resolve().parent.parent
ALPHA = 1e-4
VARIANT_PARAMS = ("retire_after", "retest_share", "min_weight", "mix_share")


def arrays(coord: cdas.Coordinator, run_id: str) -> dict[str, np.ndarray]:
    return fmt.decode(coord.snapshot(run_id))[1]


def ints(prompt_ids: list[str]) -> list[int]:
    return [int(p) for p in prompt_ids]


def naive_nearest(
    d: np.ndarray, t: np.ndarray, seed: int, allowed: np.ndarray, c: float, size: int
) -> list[int]:
    """CDAS's alignment selection by a full sort (what the paper's code does, with the library's
    tie keys): floor(size/2) of D <= C by largest (D, key), ceil(size/2) of D > C by smallest, a
    short side made up from the other, next nearest first."""
    idx = np.flatnonzero(allowed)
    order = idx[np.lexsort((tie_keys(seed, idx, t[idx]), d[idx]))]
    below, above = order[d[order] <= c][::-1], order[d[order] > c]
    lo, hi = size // 2, size - size // 2
    if below.size < lo:
        lo, hi = below.size, hi + lo - below.size
    elif above.size < hi:
        lo, hi = lo + hi - above.size, above.size
    return [int(x) for x in (*below[:lo], *above[:hi])]


class Model:
    """The retirement rule written independently of the strategy: streaks of pass rate 0 or 1,
    the retired set, the sampled prompts (the warm-up), and the applied (step, prompt) pairs."""

    def __init__(self, n: int, retire_after: int, warmup: bool) -> None:
        self.k = retire_after
        self.warmup = warmup
        self.streak = np.zeros(n, dtype=np.int64)
        self.retired = np.zeros(n, dtype=np.bool_)
        self.sampled = np.zeros(n, dtype=np.bool_)
        self.applied: set[tuple[int, int]] = set()
        self.returned = 0

    def add(self, m: int) -> None:
        self.streak = np.concatenate([self.streak, np.zeros(m, dtype=np.int64)])
        self.retired = np.concatenate([self.retired, np.zeros(m, dtype=np.bool_)])
        self.sampled = np.concatenate([self.sampled, np.zeros(m, dtype=np.bool_)])

    def issued(self, batch: list[int]) -> None:
        self.sampled[batch] = True

    def results(self, step: int, prompts: list[int], rates: list[float]) -> None:
        for x, s in zip(prompts, rates, strict=True):
            if (step, x) in self.applied:
                continue  # a duplicate changes nothing
            self.applied.add((step, x))
            self.sampled[x] = True
            extreme = s in (0.0, 1.0)
            self.streak[x] = self.streak[x] + 1 if extreme else 0
            if self.retired[x] and not extreme:
                self.retired[x] = False
                self.returned += 1
            elif not self.retired[x] and self.k and self.streak[x] >= self.k:
                self.retired[x] = True

    def expected_retests(self, size: int, share: float, exclude: set[int]) -> int:
        """How many retired prompts a batch of ``size`` must hold (see the strategy's doc)."""
        n = self.retired.size
        warm = min(size, int((~self.sampled).sum())) if self.warmup else 0
        rest = size - warm
        retired = int(self.retired.sum())
        if rest == 0 or retired == 0:
            return 0
        free = retired - sum(1 for x in exclude if self.retired[x])
        active = n - retired - sum(1 for x in exclude if not self.retired[x]) - warm
        wanted = round(share * size) if warm == 0 else 0
        return max(0, min(max(wanted, rest - active), free, rest))


# ---------------------------------------------------------------- bad values, every door
BAD = [
    ("retire_after", -1, "-1"),
    ("retire_after", 1.5, "1.5"),
    ("retire_after", True, "True"),
    ("retire_after", "3", "'3'"),
    ("retire_after", 1_000_001, "1000001"),
    ("retest_share", -0.25, "-0.25"),
    ("retest_share", 1.5, "1.5"),
    ("retest_share", "half", "'half'"),
    ("min_weight", -0.5, "-0.5"),
    ("min_weight", 2, "2"),
    ("min_weight", None, "None"),
    ("mix_share", -0.1, "-0.1"),
    ("mix_share", 1.01, "1.01"),
    ("mix_share", "all", "'all'"),
]


@pytest.mark.parametrize(("name", "value", "says"), [*BAD, ("min_weight", math.nan, "nan")])
def test_bad_values_are_refused_by_the_library_naming_the_param(
    make_store: StoreFactory, name: str, value: Any, says: str
) -> None:
    coord = cdas.Coordinator(make_store())
    with pytest.raises(cdas.InvalidArgumentError) as caught:
        coord.put_run("v", params={name: value}, prompts=10)
    assert f"params.{name}" in caught.value.message, caught.value.message
    assert says in caught.value.message, caught.value.message
    assert caught.value.details["field"] == f"params.{name}"
    assert coord.list_runs() == []


@pytest.fixture(scope="module")
def doors() -> Iterator[tuple[cdas.Coordinator, httpx.Client, Any]]:
    coordinator = cdas.Coordinator(cdas.MemoryStore())
    with (
        running_service(coordinator) as service,
        httpx.Client(base_url=rest_url(service.bound), timeout=30) as http,
        grpc.insecure_channel(grpc_target(service.bound)) as channel,
    ):
        yield coordinator, http, pb_grpc.CoordinatorStub(channel)  # type: ignore[no-untyped-call]


@pytest.mark.parametrize(("name", "value", "says"), BAD)
def test_bad_values_are_422_over_rest_and_invalid_argument_over_grpc(
    doors: tuple[cdas.Coordinator, httpx.Client, Any], name: str, value: Any, says: str
) -> None:
    coordinator, http, stub = doors
    field = f"params.{name}"
    answer = http.put("/v1/runs/bad", json={"params": {name: value}, "prompts": {"count": 5}})
    assert answer.status_code == 422
    assert_rest_error(answer, "invalid_argument", field, says)
    failure = grpc_failure(
        lambda: stub.PutRun(
            pb.PutRunRequest(
                run_id="bad", params=struct({name: value}), prompts=pb.Prompts(count=5)
            )
        )
    )
    assert failure.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = assert_grpc_error(failure, "invalid_argument", field)
    assert details["field"] == field
    assert http.get("/v1/runs/bad").status_code == 404
    assert coordinator.list_runs() == []


# ---------------------------------------------------------------- defaults: the paper
def _drive(coord: cdas.Coordinator, run_ids: list[str], steps: int, size: int, n: int) -> None:
    """The same batches asked of every run and the same results (many of them 0/8 or 8/8)."""
    rng = np.random.default_rng(17)
    ability = rng.normal(0, 2.5, n)
    for step in range(steps):
        batches = [coord.next_batch(r, step, size) for r in run_ids]
        assert all(b.prompt_ids == batches[0].prompt_ids for b in batches), step
        assert len({b.competence for b in batches}) == 1
        p = 1 / (1 + np.exp(ability[ints(batches[0].prompt_ids)] - step / 15))
        results = [
            {"prompt_id": x, "correct": int(k), "total": 8}
            for x, k in zip(batches[0].prompt_ids, rng.binomial(8, p), strict=True)
        ]
        outcomes = {coord.report_results(r, step, results) for r in run_ids}
        assert len(outcomes) == 1


@pytest.mark.parametrize("warmup", [True, False])
def test_defaults_are_the_paper_bit_for_bit(make_store: StoreFactory, warmup: bool) -> None:
    """Left out, given as their defaults, retest_share changed without retirement, or a weight
    floor that 1/t never goes below: the same batches and the same state as a plain run."""
    n, coord = 120, cdas.Coordinator(make_store())
    variants = {
        "plain": {},
        "explicit": {
            "retire_after": 0,
            "retest_share": 0.05,
            "min_weight": 0.0,
            "mix_share": 0.0,
        },
        "unused-share": {"retire_after": 0, "retest_share": 0.9},
        "tiny-floor": {"min_weight": 1e-9},
    }
    for run_id, params in variants.items():
        coord.put_run(run_id, params={"warmup": warmup, **params}, prompts=n, seed=5)
    _drive(coord, list(variants), steps=50, size=24, n=n)
    meta, plain = logical_state(coord, "plain")
    assert not {k for k in plain if "streak" in k or "retired" in k}  # nothing new is saved
    for run_id in variants:
        state = coord.get_state(run_id)
        assert state.retired == 0
        assert dataclasses.replace(state, run_id="plain") == coord.get_state("plain")
        other_meta, other = logical_state(coord, run_id)
        assert other.keys() == plain.keys()
        for name in plain:
            np.testing.assert_array_equal(other[name], plain[name], err_msg=name)
        assert {k: v for k, v in other_meta.items() if k not in ("run_id", "config")} == {
            k: v for k, v in meta.items() if k not in ("run_id", "config")
        }


def test_default_selection_is_the_full_sort_of_the_paper(make_store: StoreFactory) -> None:
    """Without warm-up, every batch of a default run is the alignment selection computed by a full
    sort of all prompts (independent of the ordered index)."""
    n, size, seed = 90, 16, 21
    coord = cdas.Coordinator(make_store())
    coord.put_run("r", params={"warmup": False}, prompts=n, seed=seed)
    rng = np.random.default_rng(2)
    for step in range(40):
        a = arrays(coord, "r")
        c = coord.get_run("r").competence
        batch = coord.next_batch("r", step, size)
        expected = naive_nearest(a["core_d"], a["core_t"], seed, np.ones(n, bool), c, size)
        assert ints(batch.prompt_ids) == expected, step
        coord.report_results(
            "r",
            step,
            [
                {"prompt_id": x, "correct": int(k), "total": 8}
                for x, k in zip(batch.prompt_ids, rng.integers(0, 9, size), strict=True)
            ],
        )


# ---------------------------------------------------------------- retirement
@pytest.mark.parametrize(
    ("retire_after", "share", "warmup"),
    [(1, 0.25, False), (2, 0.1, True), (3, 0.5, False), (2, 0.0, True)],
)
def test_retirement_and_retests_follow_an_independent_model(
    make_store: StoreFactory, retire_after: int, share: float, warmup: bool
) -> None:
    """Every batch: distinct prompts; as many retired prompts as the rule says; the others exactly
    the full-sort alignment selection over the prompts not retired (so a retired prompt is never
    chosen by it); the state's retired count equals the model's recount. Unsolvable prompts
    retire, and prompts that become solvable come back through a retest."""
    n, size, seed = 80, 12, 9
    coord = cdas.Coordinator(make_store())
    params = {"warmup": warmup, "retire_after": retire_after, "retest_share": share}
    coord.put_run("r", params=params, prompts=n, seed=seed)
    model = Model(n, retire_after, warmup)
    rng = np.random.default_rng(retire_after)
    ability = np.concatenate([np.full(20, 9.0), np.full(10, -9.0), rng.normal(0, 1, n - 30)])
    retests_seen = 0
    for step in range(90):
        if step == 45:  # the policy learns the unsolvable prompts
            ability[:20] = 0.0
        a = arrays(coord, "r")
        c = coord.get_run("r").competence
        unsampled = ~model.sampled
        expected_r = model.expected_retests(size, share, set())
        batch = ints(coord.next_batch("r", step, size).prompt_ids)
        assert len(set(batch)) == size
        retests = [x for x in batch if model.retired[x]]
        assert len(retests) == expected_r, step
        retests_seen += len(retests)
        # the rest: warm-up draws (prompts never sampled), then the alignment selection of the
        # prompts neither retired nor drawn by the warm-up
        allowed = ~model.retired & ~unsampled if warmup else ~model.retired
        chosen = [x for x in batch if allowed[x]]
        warm = size - expected_r - len(chosen)
        assert warm == (min(size, int(unsampled.sum())) if warmup else 0), step
        expected = naive_nearest(a["core_d"], a["core_t"], seed, allowed, c, len(chosen))
        assert chosen == expected, step
        model.issued(batch)
        p = 1 / (1 + np.exp(ability[batch]))
        rates = [k / 8 for k in rng.binomial(8, p)]
        extra = int(rng.integers(0, n))  # results for a prompt outside the batch count too
        prompts = batch + ([extra] if extra not in batch else [])
        rates += [float(rng.integers(0, 2))] * (len(prompts) - len(batch))
        coord.report_results(
            "r",
            step,
            [
                {"prompt_id": str(x), "pass_rate": s, "total": 8}
                for x, s in zip(prompts, rates, strict=True)
            ],
        )
        model.results(step, prompts, rates)
        assert coord.get_state("r").retired == int(model.retired.sum()), step
    assert model.retired.any()
    if share > 0:
        assert retests_seen > 0
        assert model.returned > 0  # learned prompts came back through retests
    else:
        assert retests_seen == 0


def test_a_retired_prompt_returns_only_with_a_result_that_is_not_extreme() -> None:
    coord = cdas.Coordinator(cdas.MemoryStore())
    coord.put_run(
        "r", params={"warmup": False, "retire_after": 2, "retest_share": 0.0}, prompts=30, seed=1
    )

    def report(step: int, prompt: int, rate: float) -> None:
        coord.report_results("r", step, [{"prompt_id": str(prompt), "pass_rate": rate, "total": 4}])

    report(0, 7, 0.0)
    assert coord.get_state("r").retired == 0  # one zero-gradient result: not yet
    report(1, 7, 0.5)  # the streak is broken
    report(2, 7, 1.0)
    assert coord.get_state("r").retired == 0
    report(3, 7, 0.0)  # 1.0 then 0.0: two zero-gradient results in a row (either extreme)
    assert coord.get_state("r").retired == 1
    for step in range(4, 40):  # never chosen while retired, whatever its difficulty
        assert "7" not in coord.next_batch("r", step, 29).prompt_ids
    report(40, 7, 1.0)  # still extreme: stays retired
    assert coord.get_state("r").retired == 1
    report(41, 7, 0.25)  # another pass rate: back in selection
    assert coord.get_state("r").retired == 0
    assert "7" in coord.next_batch("r", 42, 30).prompt_ids
    info = coord.get_prompt("r", "7")
    assert info.updates == 6  # retired prompts keep their difficulty up to date


def test_retest_draws_are_uniform_over_the_retired_prompts() -> None:
    """25 retired prompts, 3000 batches of 20 with retest_share 0.2: 4 retests each, every
    retired prompt and every pair of them equally likely (chi-square)."""
    coord = cdas.Coordinator(cdas.MemoryStore())
    coord.put_run(
        "r", params={"warmup": False, "retire_after": 1, "retest_share": 0.2}, prompts=100, seed=11
    )
    retired = 25
    coord.report_results(
        "r", 0, [{"prompt_id": str(i), "pass_rate": 1.0, "total": 8} for i in range(retired)]
    )
    assert coord.get_state("r").retired == retired
    singles, pairs = Counter[int](), Counter[tuple[int, int]]()
    for step in range(1, 3001):
        batch = ints(coord.next_batch("r", step, 20).prompt_ids)
        retests = sorted(x for x in batch if x < retired)
        assert len(retests) == 4  # round(0.2 * 20)
        singles.update(retests)
        pairs.update(itertools.combinations(retests, 2))
    assert stats.chisquare([singles[i] for i in range(retired)]).pvalue > ALPHA
    all_pairs = list(itertools.combinations(range(retired), 2))
    assert stats.chisquare([pairs[p] for p in all_pairs]).pvalue > ALPHA


@pytest.mark.parametrize(
    ("share", "size", "retired", "expected"),
    [
        (0.2, 20, 3, 3),  # capped by the prompts retired
        (0.05, 10, 5, 0),  # round(0.5) = 0 (half to even)
        (0.05, 30, 5, 2),  # round(1.5) = 2
        (1.0, 12, 5, 5),
        (0.5, 7, 9, 4),  # round(3.5) = 4
    ],
)
def test_retests_per_batch_are_the_rounded_share_capped(
    share: float, size: int, retired: int, expected: int
) -> None:
    coord = cdas.Coordinator(cdas.MemoryStore())
    params = {"warmup": False, "retire_after": 1, "retest_share": share}
    coord.put_run("r", params=params, prompts=60, seed=3)
    coord.report_results(
        "r", 0, [{"prompt_id": str(i), "pass_rate": 0.0, "total": 8} for i in range(retired)]
    )
    for step in range(1, 20):
        batch = ints(coord.next_batch("r", step, size).prompt_ids)
        assert sum(1 for x in batch if x < retired) == expected


def test_rounds_of_a_step_never_repeat_a_retest() -> None:
    coord = cdas.Coordinator(cdas.MemoryStore())
    params = {"warmup": False, "retire_after": 1, "retest_share": 0.5}
    coord.put_run("r", params=params, prompts=40, seed=4)
    coord.report_results(
        "r", 0, [{"prompt_id": str(i), "pass_rate": 0.0, "total": 8} for i in range(6)]
    )
    for step in range(1, 30):
        first = ints(coord.next_batch("r", step, 8, round=0).prompt_ids)
        second = ints(coord.next_batch("r", step, 8, round=1).prompt_ids)
        assert not set(first) & set(second)
        assert sum(1 for x in first if x < 6) == 4
        assert sum(1 for x in second if x < 6) == 2  # the retired ones round 0 did not take


def test_a_run_almost_all_retired_still_fills_its_batches(make_store: StoreFactory) -> None:
    coord = cdas.Coordinator(make_store())
    params = {"warmup": False, "retire_after": 1, "retest_share": 0.0}
    coord.put_run("r", params=params, prompts=10, seed=2)
    coord.report_results(
        "r", 0, [{"prompt_id": str(i), "pass_rate": i % 2, "total": 8} for i in range(10)]
    )
    assert coord.get_state("r").retired == 10
    assert sorted(ints(coord.next_batch("r", 1, 10).prompt_ids)) == list(range(10))
    assert len(set(coord.next_batch("r", 2, 4).prompt_ids)) == 4
    coord.report_results("r", 2, [{"prompt_id": "3", "pass_rate": 0.5, "total": 8}])
    assert coord.get_state("r").retired == 9
    assert coord.next_batch("r", 3, 1).prompt_ids == ["3"]  # the only prompt in selection
    batch = coord.next_batch("r", 4, 3).prompt_ids
    assert "3" in batch
    assert len(set(batch)) == 3


def test_warm_up_batches_are_the_papers_and_retests_start_after_them() -> None:
    """Retirement happens during the warm-up, but warm-up batches are drawn as without it; the
    first batch with no warm-up draw holds round(share * B) retests."""
    n, size = 50, 10
    coord = cdas.Coordinator(cdas.MemoryStore())
    coord.put_run("plain", prompts=n, seed=8)
    coord.put_run("ret", params={"retire_after": 1, "retest_share": 0.3}, prompts=n, seed=8)
    for step in range(n // size):
        batches = [coord.next_batch(r, step, size) for r in ("plain", "ret")]
        assert batches[0].prompt_ids == batches[1].prompt_ids
        assert batches[0].competence == batches[1].competence
        results = [
            {"prompt_id": x, "pass_rate": float(int(x) % 2), "total": 8}
            for x in batches[0].prompt_ids
        ]
        for r in ("plain", "ret"):
            coord.report_results(r, step, results)
    assert coord.get_state("ret").retired == n  # every result was 0 or 1
    batch = coord.next_batch("ret", n // size, size)
    assert len(set(batch.prompt_ids)) == size  # all retired: retests (3) and the fill (7)


# ---------------------------------------------------------------- stores and snapshots
def _program(coord: cdas.Coordinator, run_id: str, steps: range, n: int) -> list[Any]:
    rng = np.random.default_rng(steps.start)
    ability = np.random.default_rng(0).normal(0, 3, n)
    answers: list[Any] = []
    for step in steps:
        batch = coord.next_batch(run_id, step, 16)
        answers.append(batch)
        if step % 7 == 3:
            answers.append(coord.next_batch(run_id, step, 5, round=1))
        p = 1 / (1 + np.exp(ability[ints(batch.prompt_ids)] - step / 20))
        results = [
            {"prompt_id": x, "correct": int(k), "total": 8}
            for x, k in zip(batch.prompt_ids, rng.binomial(8, p), strict=True)
        ]
        answers.append(coord.report_results(run_id, step, results))
        answers.append(coord.report_results(run_id, step, results[:3]))  # duplicates
        answers.append(coord.get_state(run_id))
    return answers


VARIANTS = [
    {"retire_after": 2, "retest_share": 0.2, "min_weight": 0.1},
    {"mix_share": 0.3, "retire_after": 2},
    {"retire_after": 1, "retest_share": 0.5, "warmup": False},
    {"min_weight": 0.5},
]


@pytest.mark.parametrize("params", VARIANTS)
def test_snapshot_and_restore_mid_run_continue_identically(
    make_store: StoreFactory, params: dict[str, Any]
) -> None:
    n = 70
    original = cdas.Coordinator(make_store())
    original.put_run("r", params=params, prompts=n, seed=13)
    _program(original, "r", range(0, 30), n)
    snapshot = original.snapshot("r")
    names = set(fmt.decode(snapshot)[1])
    assert ("strategy_streak" in names) == bool(params.get("retire_after"))
    assert ("strategy_retired_items" in names) == bool(params.get("retire_after"))
    copies = [cdas.Coordinator(make_store()), cdas.Coordinator(cdas.MemoryStore())]
    for copy in copies:
        copy.restore("r", snapshot)
        assert copy.get_state("r") == original.get_state("r")
    later = _program(original, "r", range(30, 60), n)
    for copy in copies:
        assert _program(copy, "r", range(30, 60), n) == later
        assert_same_state(logical_state(copy, "r"), logical_state(original, "r"))
    assert original.get_state("r").retired == (
        fmt.decode(original.snapshot("r"))[1].get("strategy_retired_items", np.zeros(0)).size
    )


@pytest.mark.parametrize("params", VARIANTS)
def test_memory_and_redis_agree_on_the_variants(
    redis_server: RedisServer, params: dict[str, Any]
) -> None:
    n = 70
    memory = cdas.Coordinator(cdas.MemoryStore())
    store = cdas.RedisStore(f"redis://127.0.0.1:{redis_server.port}/12")
    store.client.flushdb()
    remote = cdas.Coordinator(store)
    try:
        for coord in (memory, remote):
            coord.put_run("r", params=params, prompts=n, seed=31)
        assert _program(memory, "r", range(0, 40), n) == _program(remote, "r", range(0, 40), n)
        assert_same_state(logical_state(memory, "r"), logical_state(remote, "r"))
        remote.restore("r", memory.snapshot("r"))  # and across stores
        assert _program(memory, "r", range(40, 60), n) == _program(remote, "r", range(40, 60), n)
        assert_same_state(logical_state(memory, "r"), logical_state(remote, "r"))
    finally:
        store.client.flushdb()
        store.close()


def test_a_snapshot_written_before_the_variants_loads_with_their_defaults() -> None:
    """Snapshots of default cdas runs from before these params existed lack them in the config."""
    coord = cdas.Coordinator(cdas.MemoryStore())
    coord.put_run("r", prompts=40, seed=6)
    _program(coord, "r", range(0, 10), 40)
    meta, saved = fmt.decode(coord.snapshot("r"))
    for name in VARIANT_PARAMS:
        del meta["config"]["params"][name]
    old = fmt.encode(meta, saved)
    copy = cdas.Coordinator(cdas.MemoryStore())
    copy.restore("r", old)
    assert copy.get_run("r") == coord.get_run("r")
    assert _program(copy, "r", range(10, 20), 40) == _program(coord, "r", range(10, 20), 40)


def test_a_redis_run_stored_before_the_variants_still_works(redis_server: RedisServer) -> None:
    store = cdas.RedisStore(f"redis://127.0.0.1:{redis_server.port}/11")
    store.client.flushdb()
    try:
        coord = cdas.Coordinator(store)
        coord.put_run("r", prompts=30, seed=2)
        meta = RunKeys("r").meta
        config = json.loads(store.client.hget(meta, "config"))
        for name in VARIANT_PARAMS:
            del config["params"][name]
        store.client.hset(meta, "config", json.dumps(config))  # as an older release wrote it
        assert not coord.put_run("r", prompts=30, seed=2).created  # the same run, not a 409
        assert coord.get_run("r").params["retire_after"] == 0
        assert len(coord.next_batch("r", 0, 8).prompt_ids) == 8
    finally:
        store.client.flushdb()
        store.close()


# ---------------------------------------------------------------- min_weight
@pytest.mark.parametrize("w0", [0.0, 0.05, 0.3, 1.0])
def test_min_weight_difficulty_is_the_moving_average(make_store: StoreFactory, w0: float) -> None:
    """D against a numpy recomputation of D <- D + max(1/t, w0) (d - D), bit for bit; and against
    the closed forms: the mean of the d's (w0 = 0), the unrolled moving average after."""
    n, size = 30, 10
    coord = cdas.Coordinator(make_store())
    coord.put_run("r", params={"warmup": False, "min_weight": w0}, prompts=n, seed=2)
    rng = np.random.default_rng(4)
    D, T = np.zeros(n), np.zeros(n, dtype=np.int32)
    history: list[list[float]] = [[] for _ in range(n)]
    for step in range(80):
        batch = coord.next_batch("r", step, size)
        idx = np.array(ints(batch.prompt_ids))
        k = rng.integers(0, 9, size)
        coord.report_results(
            "r",
            step,
            [
                {"prompt_id": x, "correct": int(c), "total": 8}
                for x, c in zip(batch.prompt_ids, k, strict=True)
            ],
        )
        d = 1.0 / (1.0 + np.exp(D[idx] - batch.competence)) - k / 8
        T[idx] += 1
        mean = D[idx] + (d - D[idx]) / T[idx]
        D[idx] = np.where(1.0 / T[idx] < w0, D[idx] + w0 * (d - D[idx]), mean)
        for x, dx in zip(idx, d, strict=True):
            history[x].append(float(dx))
        a = arrays(coord, "r")
        np.testing.assert_array_equal(a["core_t"], T)
        np.testing.assert_array_equal(a["core_d"], D)
        assert abs(coord.get_run("r").competence + math.fsum(D) / n) < 1e-12
    for x in range(n):
        ds = history[x]
        if not ds:
            continue
        if w0 == 0.0:
            assert D[x] == pytest.approx(math.fsum(ds) / len(ds), abs=1e-14)
        else:
            ema = 0.0
            for t, dx in enumerate(ds, start=1):
                ema += max(1.0 / t, w0) * (dx - ema)
            assert D[x] == pytest.approx(ema, abs=1e-14)
    assert (np.abs(D) <= 1).all()


def test_competence_stays_minus_mean_difficulty_with_min_weight() -> None:
    """200,000 updates with min_weight 0.25: C = -mean D recomputed (1e-9); D in [-1, 1]."""
    n = 500
    coord = cdas.Coordinator(cdas.MemoryStore())
    coord.put_run("r", params={"min_weight": 0.25}, prompts=n, seed=3)
    rng = np.random.default_rng(8)
    ability = rng.normal(0, 2, n)
    ids = [str(i) for i in range(n)]
    for step in range(400):
        p = 1 / (1 + np.exp(ability - step / 100))
        k = rng.binomial(8, p)
        coord.report_results(
            "r", step, [{"prompt_id": ids[i], "correct": int(k[i]), "total": 8} for i in range(n)]
        )
    a = arrays(coord, "r")
    assert int(a["core_t"].sum()) == 200_000
    assert abs(coord.get_run("r").competence + math.fsum(a["core_d"]) / n) < 1e-9
    assert (np.abs(a["core_d"]) <= 1).all()
    assert -1 <= coord.get_run("r").competence <= 1


def test_other_strategies_keep_the_running_mean() -> None:
    coord = cdas.Coordinator(cdas.MemoryStore())
    for strategy in ("random", "prioritized", "mopps"):
        coord.put_run(strategy, strategy=strategy, prompts=5, seed=1)
        for step, rate in enumerate([0.0, 1.0, 0.5, 0.25]):
            coord.report_results(
                strategy, step, [{"prompt_id": "0", "pass_rate": rate, "total": 4}]
            )
    expected = coord.get_prompt("random", "0").difficulty
    assert coord.get_prompt("prioritized", "0").difficulty == expected
    assert coord.get_prompt("mopps", "0").difficulty == expected
    assert coord.get_state("random").retired == 0


# ---------------------------------------------------------------- properties (hypothesis)
rates = st.sampled_from([0.0, 1.0, 0.0, 1.0, 0.5, 0.25]) | st.floats(0.0, 1.0)


@st.composite
def programs(draw: st.DrawFn) -> list[tuple[Any, ...]]:
    ops: list[tuple[Any, ...]] = []
    for step in range(draw(st.integers(1, 14))):
        ops.append(("batch", step, draw(st.integers(1, 20)), 0))
        if draw(st.integers(0, 3)) == 0:
            ops.append(("batch", step, draw(st.integers(1, 8)), 1))
        ops.append(("results", step, draw(st.lists(rates, min_size=1, max_size=25))))
        if draw(st.integers(0, 5)) == 0:
            ops.append(("results", step, draw(st.lists(rates, min_size=1, max_size=5))))
        if draw(st.integers(0, 7)) == 0:
            ops.append(("add", draw(st.integers(1, 8))))
    return ops


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 35),
    seed=st.integers(0, 2**63 - 1),
    retire_after=st.integers(0, 3),
    share=st.sampled_from([0.0, 0.05, 0.3, 1.0]) | st.floats(0.0, 1.0),
    min_weight=st.sampled_from([0.0, 0.2, 1.0]) | st.floats(0.0, 1.0),
    warmup=st.booleans(),
    ops=programs(),
)
def test_variant_invariants_hold_for_any_params_and_results(
    n: int,
    seed: int,
    retire_after: int,
    share: float,
    min_weight: float,
    warmup: bool,
    ops: list[tuple[Any, ...]],
) -> None:
    """Batches distinct (also across a step's rounds); the count of retired prompts in each batch
    is the rule's; the rest is the full-sort selection over prompts neither retired nor issued;
    the retired count is the model's; D and C in [-1, 1] and C = -mean D."""
    coord = cdas.Coordinator(cdas.MemoryStore())
    params = {
        "warmup": warmup,
        "retire_after": retire_after,
        "retest_share": share,
        "min_weight": min_weight,
    }
    coord.put_run("r", params=params, prompts=n, seed=seed)
    model = Model(n, retire_after, warmup)
    issued: dict[int, list[int]] = {}
    for op in ops:
        size_now = coord.get_run("r").size
        if op[0] == "batch":
            _, step, size, round_ = op
            if round_ == 1 and step not in issued:
                continue
            taken = issued.get(step, [])
            size = min(size, size_now - len(taken))
            if size < 1:
                continue
            a = arrays(coord, "r")
            c = coord.get_run("r").competence
            unsampled = ~model.sampled
            expected_r = model.expected_retests(size, share, set(taken))
            batch = ints(coord.next_batch("r", step, size, round=round_).prompt_ids)
            assert len(set(batch)) == size
            assert not set(batch) & set(taken)
            assert sum(1 for x in batch if model.retired[x]) == expected_r
            allowed = ~model.retired & ~unsampled if warmup else ~model.retired
            allowed[taken] = False
            chosen = [x for x in batch if allowed[x]]
            warm = min(size, int(unsampled.sum())) if warmup else 0
            assert len(chosen) == size - expected_r - warm
            d, t = a["core_d"], a["core_t"]
            assert chosen == naive_nearest(d, t, seed, allowed, c, len(chosen))
            model.issued(batch)
            issued.setdefault(step, []).extend(batch)
        elif op[0] == "results":
            _, step, values = op
            targets = list(dict.fromkeys(issued.get(step, []) + list(range(size_now))))
            prompts = targets[: len(values)]
            values = values[: len(prompts)]
            coord.report_results(
                "r",
                step,
                [
                    {"prompt_id": str(x), "pass_rate": s, "total": 8}
                    for x, s in zip(prompts, values, strict=True)
                ],
            )
            model.results(step, prompts, values)
        else:
            coord.add_prompts("r", op[1])
            model.add(op[1])
        state = coord.get_state("r")
        assert state.retired == int(model.retired.sum())
        d = arrays(coord, "r")["core_d"]
        assert (np.abs(d) <= 1).all()
        assert -1 <= state.competence <= 1
        assert abs(state.competence + math.fsum(d) / d.size) < 1e-12


# ---------------------------------------------------------------- state, doors, metrics
def test_the_retired_count_is_on_both_doors_and_in_the_metrics(tmp_path: Path) -> None:
    coordinator = cdas.Coordinator(cdas.MemoryStore())
    coordinator.put_run("ret", params={"retire_after": 1, "warmup": False}, prompts=20, seed=1)
    coordinator.report_results(
        "ret", 0, [{"prompt_id": str(i), "pass_rate": float(i % 2), "total": 8} for i in range(7)]
    )
    coordinator.put_run("plain", prompts=5)
    coordinator.put_run("rand", strategy="random", prompts=5)
    expected = {"ret": 7, "plain": 0, "rand": 0}
    with (
        running_service(coordinator) as service,
        RestClient(rest_url(service.bound)) as rest,
        GrpcClient(grpc_target(service.bound)) as rpc,
        grpc.insecure_channel(grpc_target(service.bound)) as channel,
    ):
        stub = pb_grpc.CoordinatorStub(channel)  # type: ignore[no-untyped-call]
        url = rest_url(service.bound)
        for run_id, count in expected.items():
            assert coordinator.get_state(run_id).retired == count
            assert httpx.get(f"{url}/v1/runs/{run_id}/state").json()["retired"] == count
            assert stub.GetState(pb.GetStateRequest(run_id=run_id)).retired == count
            assert rest.get_state(run_id) == coordinator.get_state(run_id)
            assert rpc.get_state(run_id) == coordinator.get_state(run_id)
        s = scrape(url)
        for run_id, count in expected.items():
            assert s.get("cdas_run_prompts_retired", run=run_id) == count
        assert s.types["cdas_run_prompts_retired"] == "gauge"
        checked = promtool("check", "metrics", stdin=s.text)
        assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "`cdas_run_prompts_retired`" in (ROOT / "docs" / "metrics.md").read_text()


def test_older_state_answers_read_as_nothing_retired() -> None:
    """An SDK reading a server from before the field gets 0 (REST: the key is absent)."""
    state = cdas.Coordinator(cdas.MemoryStore())
    state.put_run("r", prompts=3)
    body = state.get_state("r").to_dict()
    del body["retired"]
    assert cdas.RunState.from_dict(body).retired == 0


# ---------------------------------------------------------------- mixing (mix_share)


def test_mixed_draws_are_uniform_over_every_prompt_and_the_rest_is_cdas() -> None:
    """mix_share 0.25 of batches of 20 over 60 prompts, warm-up off: 5 prompts of each batch
    uniform over all 60 (chi-square over 2000 batches, alone and in pairs); the other 15 are
    exactly the alignment selection with those 5 excluded (an independent full sort)."""
    n, size = 60, 20
    coord = cdas.Coordinator(cdas.MemoryStore())
    coord.put_run("mix", params={"warmup": False, "mix_share": 0.25}, prompts=n, seed=3)
    rng = np.random.default_rng(5)
    coord.report_results(  # spread the difficulties, then keep the state fixed
        "mix", 0, [
            {"prompt_id": str(i), "correct": int(k), "total": 8}
            for i, k in enumerate(rng.integers(0, 9, n))
        ],
    )  # fmt: skip
    state = arrays(coord, "mix")
    competence = coord.get_run("mix").competence
    singles, pairs = Counter[int](), Counter[tuple[int, int]]()
    for step in range(1, 2001):
        batch = ints(coord.next_batch("mix", step, size).prompt_ids)
        assert len(set(batch)) == size
        mixed, aligned = batch[:5], batch[5:]
        allowed = np.ones(n, bool)
        allowed[mixed] = False
        expected = naive_nearest(state["core_d"], state["core_t"], 3, allowed, competence, size - 5)
        assert aligned == expected, step
        singles.update(mixed)
        pairs.update(itertools.combinations(sorted(mixed), 2))
    assert stats.chisquare([singles[i] for i in range(n)]).pvalue > ALPHA
    all_pairs = list(itertools.combinations(range(n), 2))
    assert stats.chisquare([pairs[p] for p in all_pairs]).pvalue > ALPHA


@pytest.mark.parametrize("share", [0.0, 0.25, 1.0])
def test_mixing_waits_for_the_warm_up_and_never_repeats_a_prompt_in_a_step(share: float) -> None:
    n, size = 50, 16
    coord = cdas.Coordinator(cdas.MemoryStore())
    coord.put_run("mix", params={"mix_share": share}, prompts=n, seed=8)
    coord.put_run("plain", prompts=n, seed=8)
    for step in range(1, 4):  # the warm-up epoch (50 / 16: steps 1-3 are all warm-up draws)
        a, b = coord.next_batch("mix", step, size), coord.next_batch("plain", step, size)
        assert a.prompt_ids == b.prompt_ids
        results = [{"prompt_id": x, "correct": 3, "total": 8} for x in a.prompt_ids]
        coord.report_results("mix", step, results)
        coord.report_results("plain", step, results)
    for step in range(4, 10):
        seen: set[str] = set()
        for r in range(3):  # rounds of one step draw disjoint prompts
            batch = coord.next_batch("mix", step, size, r).prompt_ids
            assert len(batch) == size
            assert not seen & set(batch)
            seen |= set(batch)
        results = [{"prompt_id": x, "correct": 3, "total": 8} for x in seen]
        coord.report_results("mix", step, results)


def test_uniform_excluding_draws_distinct_allowed_prompts() -> None:
    from cdas.core.strategies.cdas import _uniform_excluding

    rng = np.random.default_rng(0)
    for n, k, banned in ((10, 3, [1, 2]), (10, 20, [0, 5, 9]), (10, 4, list(range(8))), (5, 2, [])):
        out = _uniform_excluding(n, k, np.asarray(banned, dtype=np.int64), rng)
        assert len(set(out.tolist())) == out.size == min(k, n - len(banned))
        assert not set(out.tolist()) & set(banned)
        assert all(0 <= x < n for x in out.tolist())
