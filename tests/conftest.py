"""Shared fixtures and helpers for the test suite."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import cdas
from cdas.core import snapshot as snapshot_format
from cdas.core.views import Advance, Batch, PromptInfo, ReportOutcome, RunInfo, RunState
from tests.redis_servers import RedisServer

StoreFactory = Callable[..., cdas.Store]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real redis-server for the session (each test gets its own databases)."""
    server = RedisServer(Path(tmp_path_factory.mktemp("redis"))).start()
    yield server
    server.stop()


_databases = itertools.cycle(range(1, 16))


@pytest.fixture(params=["memory", "redis"])
def make_store(request: pytest.FixtureRequest) -> Iterator[StoreFactory]:
    """Fresh, empty stores of one kind: the contract tests run on every store."""
    if request.param == "memory":
        yield cdas.MemoryStore
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    made: list[cdas.RedisStore] = []

    def make(**options: Any) -> cdas.Store:
        store = cdas.RedisStore(f"redis://127.0.0.1:{server.port}/{next(_databases)}", **options)
        store.client.flushdb()
        made.append(store)
        return store

    yield make
    for store in made:
        store.client.flushdb()
        store.close()


@pytest.fixture
def coord(make_store: StoreFactory) -> cdas.Coordinator:
    """A coordinator on a fresh store (memory and Redis)."""
    return cdas.Coordinator(make_store())


def logical_state(coord: cdas.Coordinator, run_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The run's whole logical state (snapshot metadata and arrays), for equality checks."""
    return snapshot_format.decode(coord.snapshot(run_id))


def assert_same_state(
    a: tuple[dict[str, Any], dict[str, Any]], b: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    meta_a, arrays_a = a
    meta_b, arrays_b = b
    assert meta_a == meta_b
    assert arrays_a.keys() == arrays_b.keys()
    for name in arrays_a:
        np.testing.assert_array_equal(arrays_a[name], arrays_b[name], err_msg=name)


def group_results(
    prompt_ids: list[str], pass_prob: np.ndarray, rng: np.random.Generator, g: int = 8
) -> list[dict[str, Any]]:
    """Bernoulli rollouts: k ~ Binomial(g, p) correct answers for each prompt (ids are indexes)."""
    return [
        {"prompt_id": pid, "correct": int(rng.binomial(g, pass_prob[int(pid)])), "total": g}
        for pid in prompt_ids
    ]


def comparable(value: Any) -> Any:
    """An answer in comparable form: views as their ``to_dict()`` (RunInfo with ``created``),
    snapshots as their decoded logical state (arrays bit for bit)."""
    if isinstance(value, RunInfo):
        return ("RunInfo", value.to_dict(), value.created)
    if isinstance(value, Advance | Batch | ReportOutcome | PromptInfo | RunState):
        return (type(value).__name__, value.to_dict())
    if isinstance(value, list):
        return [comparable(v) for v in value]
    if isinstance(value, bytes):
        meta, arrays = snapshot_format.decode(value)
        return (
            "snapshot",
            meta,
            {k: (a.dtype.str, a.shape, a.tobytes()) for k, a in sorted(arrays.items())},
        )
    return value
