"""MemoryStore and RedisStore driven with the same random operations give the same answers, exactly:
batches, outcomes, errors, D, t, C, history and the difficulty export (a hypothesis state
machine)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule

import cdas
from cdas.core.strategies import REGISTRY
from tests.conftest import assert_same_state, logical_state
from tests.redis_servers import RedisServer

pass_rates = st.sampled_from([0.0, 1.0, 0.5, 0.25]) | st.floats(0.0, 1.0)
cdas_variants = st.sampled_from(
    [
        {},
        {"retire_after": 1, "retest_share": 0.5},
        {"retire_after": 2, "retest_share": 0.1, "min_weight": 0.3},
        {"min_weight": 0.5},
    ]
)
"""The paper's CDAS, and its variants (retirement with retests, the weight floor)."""


def _answer(call: Any) -> Any:
    """The answer of a call, or its error as (type, message)."""
    try:
        return call()
    except cdas.CdasError as exc:
        return (type(exc).__name__, exc.message)


class StoresAgree(RuleBasedStateMachine):
    server: RedisServer

    runs = Bundle("runs")

    @initialize()
    def stores(self) -> None:
        self.memory = cdas.Coordinator(cdas.MemoryStore(retain_steps=6))
        redis_store = cdas.RedisStore(f"redis://127.0.0.1:{self.server.port}/14", retain_steps=6)
        redis_store.client.flushdb()
        self.redis = cdas.Coordinator(redis_store)
        self.issued: dict[tuple[str, int], list[str]] = {}
        self.last: dict[str, tuple[int, list[dict[str, Any]]]] = {}
        self.counter = 0

    def both(self, name: str, *args: Any, **kwargs: Any) -> Any:
        mine = _answer(lambda: getattr(self.memory, name)(*args, **kwargs))
        theirs = _answer(lambda: getattr(self.redis, name)(*args, **kwargs))
        assert mine == theirs, (name, args, kwargs)
        return mine

    @rule(
        target=runs,
        strategy=st.sampled_from(sorted(REGISTRY)),
        seed=st.integers(0, 2**63 - 1),
        size=st.integers(0, 40),
        warmup=st.booleans(),
        explicit=st.booleans(),
        variant=cdas_variants,
    )
    def create(
        self,
        strategy: str,
        seed: int,
        size: int,
        warmup: bool,
        explicit: bool,
        variant: dict[str, Any],
    ) -> str:
        self.counter += 1
        run_id = f"run-{self.counter}"
        ids: Any = [f"p{i}" for i in range(size)] if explicit else size
        names = ids if explicit else [str(i) for i in range(size)]
        labels = {name: k % 3 + 1 for k, name in enumerate(names)}
        params: dict[str, Any] = {}
        if strategy == "cdas":
            params = {"warmup": warmup, **variant}
        if strategy == "curriculum":
            params = {"schedule": [{"until_step": 3, "max_label": 2}, {"min_label": 2}]}
        self.both(
            "put_run",
            run_id,
            strategy=strategy,
            params=params,
            seed=seed,
            prompts=ids,
            labels=labels,
        )
        return run_id

    @rule(run=runs, count=st.integers(1, 15), explicit=st.booleans())
    def add(self, run: str, count: int, explicit: bool) -> None:
        info = _answer(lambda: self.memory.get_run(run))
        size = info.size if isinstance(info, cdas.RunInfo) else 0
        self.counter += 1
        ids: Any = [f"x{self.counter}-{i}" for i in range(count)] if explicit else count
        names = ids if explicit else [str(size + i) for i in range(count)]
        self.both("add_prompts", run, ids, labels=dict.fromkeys(names, 2))

    @rule(run=runs, step=st.integers(0, 12), size=st.integers(1, 25), round_=st.integers(0, 2))
    def batch(self, run: str, step: int, size: int, round_: int) -> None:
        answer = self.both("next_batch", run, step, size, round=round_)
        if isinstance(answer, cdas.Batch):
            self.issued.setdefault((run, step), []).extend(answer.prompt_ids)

    @rule(run=runs, step=st.integers(0, 12), rates=st.lists(pass_rates, min_size=1, max_size=30))
    def results(self, run: str, step: int, rates: list[float]) -> None:
        info = _answer(lambda: self.memory.get_run(run))
        if not isinstance(info, cdas.RunInfo):
            return
        names = list(dict.fromkeys(self.issued.get((run, step), [])))
        targets = names + [str(i) for i in range(info.size)]
        chosen = list(dict.fromkeys(targets))[: len(rates)]
        results = [
            {"prompt_id": p, "pass_rate": s, "total": 8}
            for p, s in zip(chosen, rates, strict=False)
        ]
        self.last[run] = (step, results)
        self.both("report_results", run, step, results)

    @rule(run=runs)
    def retry(self, run: str) -> None:
        if run in self.last:
            step, results = self.last[run]
            self.both("report_results", run, step, results)

    @rule(run=runs, prompt=st.integers(0, 45))
    def read(self, run: str, prompt: int) -> None:
        self.both("get_prompt", run, str(prompt))
        self.both("get_state", run)
        self.both("get_run", run)

    @rule(run=runs, start=st.integers(0, 50), limit=st.integers(1, 30))
    def export(self, run: str, start: int, limit: int) -> None:
        """The difficulty export: one page, and every page from ``start`` of ``limit``."""
        self.both("prompt_page", run, start, limit)
        mine = _answer(lambda: list(self.memory.export_prompts(run, limit, start)))
        theirs = _answer(lambda: list(self.redis.export_prompts(run, limit, start)))
        assert mine == theirs, (run, start, limit)

    @rule(run=runs)
    def swap_snapshots(self, run: str) -> None:
        """Each store takes the other's snapshot of the run and goes on from it."""
        mine = _answer(lambda: self.memory.snapshot(run))
        theirs = _answer(lambda: self.redis.snapshot(run))
        if isinstance(mine, bytes) and isinstance(theirs, bytes):
            assert_same_state(logical_state(self.memory, run), logical_state(self.redis, run))
            assert self.memory.restore(run, theirs) == self.redis.restore(run, mine)
        else:
            assert mine == theirs

    @rule(run=runs)
    def delete(self, run: str) -> None:
        self.both("delete_run", run)

    @invariant()
    def same_runs(self) -> None:
        if hasattr(self, "memory"):
            assert self.memory.list_runs() == self.redis.list_runs()

    def teardown(self) -> None:
        if hasattr(self, "redis"):
            for info in self.memory.list_runs():
                assert_same_state(
                    logical_state(self.memory, info.run_id), logical_state(self.redis, info.run_id)
                )
            self.redis.store.client.flushdb()  # type: ignore[attr-defined]
            self.redis.store.close()  # type: ignore[attr-defined]


@pytest.fixture
def machine(redis_server: RedisServer) -> type[StoresAgree]:
    StoresAgree.server = redis_server
    return StoresAgree


def test_memory_and_redis_stores_agree(machine: type[StoresAgree]) -> None:
    run = machine.TestCase
    run.settings = settings(
        max_examples=40,
        stateful_step_count=40,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    run().runTest()


def test_a_realistic_run_agrees_step_by_step(redis_server: RedisServer) -> None:
    """A longer CDAS run with rounds, duplicates and a mid-run snapshot swap."""
    memory = cdas.Coordinator(cdas.MemoryStore())
    store = cdas.RedisStore(f"redis://127.0.0.1:{redis_server.port}/13")
    store.client.flushdb()
    redis_coord = cdas.Coordinator(store)
    rng = np.random.default_rng(3)
    ability = rng.normal(0, 1.5, 3000)
    for coord in (memory, redis_coord):
        coord.put_run("long", prompts=3000, seed=11)
    for step in range(1, 60):
        batch = memory.next_batch("long", step, 256)
        assert redis_coord.next_batch("long", step, 256) == batch
        p = 1 / (1 + np.exp(ability[[int(x) for x in batch.prompt_ids]] - step / 30))
        results = [
            {"prompt_id": x, "correct": int(k), "total": 8}
            for x, k in zip(batch.prompt_ids, rng.binomial(8, p), strict=True)
        ]
        half = len(results) // 2
        for part in (results[:half], results[half:], results[: half // 2]):
            assert memory.report_results("long", step, part) == redis_coord.report_results(
                "long", step, part
            )
        if step == 30:
            redis_coord.restore("long", memory.snapshot("long"))
    assert memory.get_state("long") == redis_coord.get_state("long")
    assert_same_state(logical_state(memory, "long"), logical_state(redis_coord, "long"))
    store.client.flushdb()
