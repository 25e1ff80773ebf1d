"""Property-based tests (hypothesis) of the invariants every run keeps."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cdas
from cdas.core import snapshot as fmt
from cdas.core.strategies import REGISTRY

CDAS_VARIANTS = "cdas+variants"
"""Stands for ``cdas`` with random variant params (retirement, retests, the weight floor)."""
STRATEGIES = [*sorted(REGISTRY), CDAS_VARIANTS]
cdas_variant_params = st.fixed_dictionaries(
    {
        "warmup": st.booleans(),
        "retire_after": st.integers(0, 3),
        "retest_share": st.sampled_from([0.0, 0.05, 0.5, 1.0]) | st.floats(0.0, 1.0),
        "min_weight": st.sampled_from([0.0, 0.1, 1.0]) | st.floats(0.0, 1.0),
    }
)
pass_rates = st.sampled_from([0.0, 1.0, 0.5, 0.125, 0.875]) | st.floats(0.0, 1.0)


def _arrays(coord: cdas.Coordinator, run_id: str) -> dict[str, np.ndarray]:
    return fmt.decode(coord.snapshot(run_id))[1]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 40),
    seed=st.integers(0, 2**63 - 1),
    rounds=st.lists(st.lists(pass_rates, min_size=1, max_size=40), min_size=1, max_size=30),
)
def test_difficulty_and_competence_stay_in_unit_interval(
    n: int, seed: int, rounds: list[list[float]]
) -> None:
    coord = cdas.Coordinator(cdas.MemoryStore())
    coord.put_run("r", prompts=n, seed=seed)
    for step, rates in enumerate(rounds):
        batch = coord.next_batch("r", step, min(len(rates), n))
        results = [
            {"prompt_id": p, "pass_rate": s, "total": 8}
            for p, s in zip(batch.prompt_ids, rates, strict=False)
        ]
        outcome = coord.report_results("r", step, results)
        assert -1.0 <= outcome.competence <= 1.0
        d = _arrays(coord, "r")["core_d"]
        assert (np.abs(d) <= 1.0).all()
        assert math.isclose(outcome.competence, -math.fsum(d) / n, abs_tol=1e-12)


@settings(max_examples=3, deadline=None)
@given(seed=st.integers(0, 2**32), spread=st.floats(0.1, 4.0))
def test_competence_does_not_drift_over_a_million_updates(seed: int, spread: float) -> None:
    """C is kept incrementally; after 10^6 updates it equals -mean(D) recomputed (1e-9)."""
    n = 1000
    rng = np.random.default_rng(seed)
    coord = cdas.Coordinator(cdas.MemoryStore())
    coord.put_run("r", strategy="random", prompts=n, seed=seed)
    ability = rng.normal(0, spread, size=n)
    ids = [str(i) for i in range(n)]
    for step in range(1000):  # 1000 x 1000 = 10^6 updates
        p = 1 / (1 + np.exp(ability - step / 200))
        k = rng.binomial(8, p)
        coord.report_results(
            "r", step, [{"prompt_id": ids[i], "correct": int(k[i]), "total": 8} for i in range(n)]
        )
    d = _arrays(coord, "r")["core_d"]
    assert int(_arrays(coord, "r")["core_t"].sum()) == 10**6
    assert abs(coord.get_run("r").competence - (-math.fsum(d) / n)) < 1e-9


# ---------------------------------------------------------------------- reproducibility
def _program(draw: st.DrawFn) -> list[tuple[Any, ...]]:
    """A random sequence of operations on one run: batches (with rounds), results (some retried,
    some for prompts outside the batch), added prompts."""
    ops: list[tuple[Any, ...]] = []
    for step in range(draw(st.integers(1, 12))):
        size = draw(st.integers(1, 20))
        ops.append(("batch", step, size, 0))
        if draw(st.booleans()):
            ops.append(("batch", step, draw(st.integers(1, 10)), 1))
        ops.append(("results", step, draw(st.lists(pass_rates, min_size=1, max_size=30))))
        if draw(st.integers(0, 5)) == 0:
            ops.append(("retry", step))
        if draw(st.integers(0, 6)) == 0:
            ops.append(("add", draw(st.integers(1, 10))))
    return ops


def _run(coord: cdas.Coordinator, run_id: str, ops: list[tuple[Any, ...]]) -> list[Any]:
    """Execute ``ops``; results go to the prompts of the step's batches (then others)."""
    answers: list[Any] = []
    issued: dict[int, list[str]] = {}
    last: dict[int, list[dict[str, Any]]] = {}
    for op in ops:
        try:
            if op[0] == "batch":
                _, step, size, round_ = op
                batch = coord.next_batch(
                    run_id, step, min(size, coord.get_run(run_id).size), round=round_
                )
                issued.setdefault(step, []).extend(batch.prompt_ids)
                answers.append(batch)
            elif op[0] == "results":
                _, step, rates = op
                size = coord.get_run(run_id).size
                targets = issued.get(step, []) + [str(i) for i in range(size)]
                chosen = list(dict.fromkeys(targets))[: len(rates)]
                results = [
                    {"prompt_id": p, "pass_rate": s, "total": 8}
                    for p, s in zip(chosen, rates, strict=False)
                ]
                last[step] = results
                answers.append(coord.report_results(run_id, step, results))
            elif op[0] == "retry":
                answers.append(coord.report_results(run_id, op[1], last.get(op[1], [])))
            elif op[0] == "add":
                size = coord.get_run(run_id).size
                labels = {str(size + i): (size + i) % 5 + 1 for i in range(op[1])}
                answers.append(coord.add_prompts(run_id, op[1], labels=labels))
        except cdas.CdasError as exc:
            answers.append((type(exc).__name__, str(exc)))
    answers.append(coord.get_state(run_id))
    return answers


def _fresh(strategy: str, seed: int, variant: dict[str, Any] | None = None) -> cdas.Coordinator:
    coord = cdas.Coordinator(cdas.MemoryStore())
    labels = {str(i): i % 5 + 1 for i in range(30)}
    params = {"schedule": [{"until_step": 4}, {"min_label": 2}]} if strategy == "curriculum" else {}
    if strategy == CDAS_VARIANTS:
        strategy, params = "cdas", variant or {}
    coord.put_run("r", strategy=strategy, params=params, prompts=30, labels=labels, seed=seed)
    return coord


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(strategy=st.sampled_from(STRATEGIES), seed=st.integers(0, 2**63 - 1), data=st.data())
def test_same_seed_and_results_give_same_batches(
    strategy: str, seed: int, data: st.DataObject
) -> None:
    ops = data.draw(st.composite(_program)())
    variant = data.draw(cdas_variant_params) if strategy == CDAS_VARIANTS else None
    first = _run(_fresh(strategy, seed, variant), "r", ops)
    second = _run(_fresh(strategy, seed, variant), "r", ops)
    assert first == second


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(strategy=st.sampled_from(STRATEGIES), seed=st.integers(0, 2**63 - 1), data=st.data())
def test_restored_snapshot_answers_every_later_call_identically(
    strategy: str, seed: int, data: st.DataObject
) -> None:
    before = data.draw(st.composite(_program)())
    after = data.draw(st.composite(_program)())
    # shift the later program's steps so they follow the first part
    offset = 1 + max((op[1] for op in before if op[0] in ("batch", "results")), default=0)
    after = [
        (op[0], op[1] + offset, *op[2:]) if op[0] in ("batch", "results", "retry") else op
        for op in after
    ]
    variant = data.draw(cdas_variant_params) if strategy == CDAS_VARIANTS else None
    original = _fresh(strategy, seed, variant)
    _run(original, "r", before)
    copy = cdas.Coordinator(cdas.MemoryStore())
    copy.restore("r", original.snapshot("r"))
    assert copy.get_run("r") == original.get_run("r")
    assert _run(copy, "r", after) == _run(original, "r", after)
