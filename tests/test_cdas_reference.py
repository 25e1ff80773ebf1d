"""CDAS against a deliberately plain reference of Algorithm 1 (the paper's formulas, O(N) a step).

The reference is driven with the coordinator's own batches and the same pass rates; every D(x),
t(x) and C must agree within 1e-12 over hundreds of steps, and every batch chosen by alignment must
be a valid symmetric selection of the reference state.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import cdas
from tests.conftest import group_results

TOL = 1e-12


class Algorithm1:
    """Kong et al., Algorithm 1, written straight from equations (5)-(9): lists and loops."""

    def __init__(self, n: int) -> None:
        self.D = [0.0] * n
        self.t = [0] * n

    def competence(self) -> float:
        return -math.fsum(self.D) / len(self.D)  # eq. (5), over all N prompts

    def update(self, pass_rates: dict[int, float], c_prev: float) -> None:
        for x, s in pass_rates.items():
            expected = 1.0 / (1.0 + math.exp(-(c_prev - self.D[x])))  # eq. (6)
            d = expected - s  # eq. (7)
            self.t[x] += 1
            t = self.t[x]
            self.D[x] = (t - 1) / t * self.D[x] + d / t  # eq. (8)

    def symmetric_quota(
        self, c: float, size: int, allowed: set[int]
    ) -> tuple[list[float], list[float], int, int]:
        """The two sides (sorted nearest first) and how many each contributes (with fill-up)."""
        below = sorted((self.D[x] for x in allowed if self.D[x] <= c), reverse=True)
        above = sorted(self.D[x] for x in allowed if self.D[x] > c)
        k_lo, k_hi = size // 2, size - size // 2
        if len(below) < k_lo:
            k_hi, k_lo = k_hi + k_lo - len(below), len(below)
        if len(above) < k_hi:
            k_lo, k_hi = k_lo + k_hi - len(above), len(above)
        return below, above, k_lo, k_hi

    def assert_symmetric_selection(self, batch: list[int], c: float, allowed: set[int]) -> None:
        below, above, k_lo, k_hi = self.symmetric_quota(c, len(batch), allowed)
        chosen_lo = sorted((self.D[x] for x in batch if self.D[x] <= c), reverse=True)
        chosen_hi = sorted(self.D[x] for x in batch if self.D[x] > c)
        assert (len(chosen_lo), len(chosen_hi)) == (k_lo, k_hi)
        # the chosen ones are the nearest: equal, value by value, to the side's k nearest
        np.testing.assert_allclose(chosen_lo, below[:k_lo], rtol=0, atol=TOL)
        np.testing.assert_allclose(chosen_hi, above[:k_hi], rtol=0, atol=TOL)


def _drive(n: int, size: int, steps: int, warmup: bool, seed: int) -> None:
    coord = cdas.Coordinator(cdas.MemoryStore())
    coord.put_run("r", strategy="cdas", params={"warmup": warmup}, prompts=n, seed=seed)
    ref = Algorithm1(n)
    rng = np.random.default_rng(seed)
    ability = rng.normal(0.0, 2.0, size=n)  # latent: p = sigmoid(progress - ability)
    sampled: set[int] = set()
    alignment_steps = 0
    for step in range(1, steps + 1):
        c_prev = ref.competence()
        batch = coord.next_batch("r", step, size)
        assert batch.competence == pytest.approx(c_prev, abs=TOL)
        ids = [int(p) for p in batch.prompt_ids]
        assert len(set(ids)) == size
        fresh = [x for x in ids if x not in sampled]
        if warmup and len(sampled) < n:
            # warm-up: never-sampled prompts first; a partial last batch is topped up by CDAS
            assert len(fresh) == min(size, n - len(sampled))
            assert ids[: len(fresh)] == fresh
            rest = ids[len(fresh) :]
            if rest:
                ref.assert_symmetric_selection(rest, c_prev, set(range(n)) - set(fresh))
        else:
            ref.assert_symmetric_selection(ids, c_prev, set(range(n)))
            alignment_steps += 1
        sampled.update(ids)
        p = 1.0 / (1.0 + np.exp(ability - 0.02 * step))
        results = group_results(batch.prompt_ids, p, rng)
        coord.report_results("r", step, results)
        ref.update({int(r["prompt_id"]): r["correct"] / r["total"] for r in results}, c_prev)
        # every D, t and C agree with the reference
        for x in ids[:: max(1, size // 16)]:
            info = coord.get_prompt("r", str(x))
            assert info.difficulty == pytest.approx(ref.D[x], abs=TOL)
            assert info.updates == ref.t[x]
        assert coord.get_run("r").competence == pytest.approx(ref.competence(), abs=TOL)
    # full comparison at the end
    state = coord.snapshot("r")
    from cdas.core import snapshot as fmt

    _, arrays = fmt.decode(state)
    np.testing.assert_allclose(arrays["core_d"], ref.D, rtol=0, atol=TOL)
    np.testing.assert_array_equal(arrays["core_t"], ref.t)
    assert alignment_steps > steps // 2


@pytest.mark.parametrize(
    ("n", "size", "steps", "warmup"),
    [(2000, 128, 300, True), (700, 64, 300, False), (300, 101, 200, True)],
)
def test_cdas_matches_algorithm_1(n: int, size: int, steps: int, warmup: bool) -> None:
    _drive(n, size, steps, warmup, seed=n + size)


def test_results_use_the_competence_the_batch_was_issued_with() -> None:
    """C_{n-1} is used for every result of step n, even after other results of the step moved C;
    a result for a prompt outside the step's batch uses the competence current when applied."""
    coord = cdas.Coordinator(cdas.MemoryStore())
    coord.put_run("r", strategy="cdas", params={"warmup": False}, prompts=50, seed=3)
    ref = Algorithm1(50)
    coord.report_results(
        "r", 0, [{"prompt_id": str(i), "pass_rate": (i % 9) / 8, "total": 8} for i in range(50)]
    )
    ref.update({i: (i % 9) / 8 for i in range(50)}, 0.0)
    c_issue = ref.competence()
    batch = coord.next_batch("r", 1, 10)
    ids = [int(p) for p in batch.prompt_ids]
    # the step's results arrive in two requests; C moves in between
    coord.report_results("r", 1, [{"prompt_id": str(x), "correct": 8, "total": 8} for x in ids[:5]])
    coord.report_results("r", 1, [{"prompt_id": str(x), "correct": 0, "total": 8} for x in ids[5:]])
    ref.update(dict.fromkeys(ids[:5], 1.0), c_issue)
    ref.update(dict.fromkeys(ids[5:], 0.0), c_issue)
    outside = next(x for x in range(50) if x not in ids)
    c_now = ref.competence()
    coord.report_results("r", 1, [{"prompt_id": str(outside), "correct": 4, "total": 8}])
    ref.update({outside: 0.5}, c_now)
    for x in [*ids, outside]:
        assert coord.get_prompt("r", str(x)).difficulty == pytest.approx(ref.D[x], abs=TOL)
    assert coord.get_run("r").competence == pytest.approx(ref.competence(), abs=TOL)


def test_results_for_every_prompt_end_the_warmup() -> None:
    """A prompt with results has a difficulty: it leaves the warm-up pool even if never issued, so
    results posted for every prompt before the first batch (say from an earlier run) end the
    warm-up, and the first batch is already an aligned selection."""
    n = 200
    coord = cdas.Coordinator(cdas.MemoryStore())
    coord.put_run("r", prompts=n, seed=5)
    ref = Algorithm1(n)
    rates = {x: (x % 9) / 8 for x in range(n)}
    coord.report_results(
        "r", 0, [{"prompt_id": str(x), "pass_rate": s, "total": 8} for x, s in rates.items()]
    )
    ref.update(rates, 0.0)
    batch = coord.next_batch("r", 1, 32)
    ref.assert_symmetric_selection(
        [int(p) for p in batch.prompt_ids], ref.competence(), set(range(n))
    )
    # with results for only some prompts, the warm-up draws from the others
    coord.put_run("half", prompts=n, seed=5)
    coord.report_results(
        "half", 0, [{"prompt_id": str(x), "correct": 1, "total": 8} for x in range(0, n, 2)]
    )
    drawn = [int(p) for step in range(1, 4) for p in coord.next_batch("half", step, 32).prompt_ids]
    assert all(x % 2 == 1 for x in drawn)
