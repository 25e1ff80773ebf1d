"""Shared fixtures and helpers for the test suite."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import cdas
from cdas.core import snapshot as snapshot_format


@pytest.fixture
def coord() -> cdas.Coordinator:
    """A coordinator on a fresh embedded store."""
    return cdas.Coordinator(cdas.MemoryStore())


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
