"""The one-call step on Redis for every strategy: one transaction that applies the results and
then selects, so a selection reads structures the same transaction rewrote (CDAS's ordered
index, the sum trees, the retired pool). Each batch and the end state equal the two calls' on
the memory store."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import cdas
from cdas.core.strategies import REGISTRY
from tests.conftest import assert_same_state, group_results, logical_state
from tests.redis_servers import RedisServer

N, B, STEPS = 300, 24, 12

VARIANTS: list[tuple[str, dict[str, Any]]] = [(name, {}) for name in sorted(REGISTRY)]
VARIANTS.append(("cdas", {"retire_after": 1, "retest_share": 0.25}))


@pytest.fixture
def redis_coordinator(redis_server: RedisServer) -> Iterator[cdas.Coordinator]:
    store = cdas.RedisStore(f"{redis_server.url}/11")
    store.client.flushdb()
    yield cdas.Coordinator(store)
    store.client.flushdb()
    store.close()


@pytest.mark.parametrize(("strategy", "params"), VARIANTS, ids=lambda v: str(v))
def test_advance_on_redis_equals_the_two_calls_on_memory(
    redis_coordinator: cdas.Coordinator, strategy: str, params: dict[str, Any]
) -> None:
    labels = {str(k): float(k % 4) for k in range(N)} if strategy == "curriculum" else None
    memory = cdas.Coordinator(cdas.MemoryStore())
    for coordinator in (memory, redis_coordinator):
        coordinator.put_run("r", strategy, params, 7, N, labels)
    rng = np.random.default_rng(3)
    pass_prob = rng.uniform(0, 1, N)
    pass_prob[rng.random(N) < 0.3] = 0.0  # unsolved prompts: zero-gradient groups, retirements
    batch = redis_coordinator.next_batch("r", 0, B)
    for step in range(STEPS):
        assert memory.next_batch("r", step, B) == batch
        results = group_results(batch.prompt_ids, pass_prob, rng)
        expected = memory.report_results("r", step, results)
        answer = redis_coordinator.advance("r", step, results, B)
        assert answer.report == expected
        batch = answer.batch
    assert memory.next_batch("r", STEPS, B) == batch
    assert_same_state(logical_state(redis_coordinator, "r"), logical_state(memory, "r"))
