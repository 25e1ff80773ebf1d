"""With stationary pass rates, CDAS's D and C converge to the unique fixed point of the paper's
equation (10): D*(x) = sigmoid(C* - D*(x)) - S(x), C* = -mean D*. The fixed point is computed here
independently, by nested bisection on the two monotone equations."""

from __future__ import annotations

import numpy as np

import cdas
from cdas.core import snapshot as fmt


def _sigmoid(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = 1.0 / (1.0 + np.exp(-x))
    return out


def solve_equation_10(S: np.ndarray) -> tuple[np.ndarray, float]:
    """D*(C) solves D = sigmoid(C - D) - S per prompt (increasing in D: bisection on [-1, 1]);
    C* solves C + mean D*(C) = 0 (increasing in C: bisection on [-1, 1])."""

    def d_of(c: float) -> np.ndarray:
        lo, hi = np.full(S.size, -1.0), np.full(S.size, 1.0)
        for _ in range(200):
            mid = (lo + hi) / 2
            positive = mid - _sigmoid(c - mid) + S > 0
            hi, lo = np.where(positive, mid, hi), np.where(positive, lo, mid)
        root: np.ndarray = (lo + hi) / 2
        return root

    c_lo, c_hi = -1.0, 1.0
    for _ in range(200):
        c = (c_lo + c_hi) / 2
        if c + d_of(c).mean() > 0:
            c_hi = c
        else:
            c_lo = c
    c = (c_lo + c_hi) / 2
    return d_of(c), c


def test_converges_to_the_fixed_point_of_equation_10() -> None:
    rng = np.random.default_rng(10)
    n = 300
    S = rng.beta(0.7, 0.7, size=n)  # stationary pass rates, many near 0 and 1
    d_star, c_star = solve_equation_10(S)
    assert np.abs(d_star - (_sigmoid(c_star - d_star) - S)).max() < 1e-12
    assert abs(c_star + d_star.mean()) < 1e-12

    coord = cdas.Coordinator(cdas.MemoryStore())
    coord.put_run("fp", strategy="cdas", prompts=n, seed=1)
    errors = []
    for step in range(1, 4001):
        batch = coord.next_batch("fp", step, n)  # the whole set every step
        coord.report_results(
            "fp",
            step,
            [{"prompt_id": p, "pass_rate": float(S[int(p)]), "total": 8} for p in batch.prompt_ids],
        )
        if step in (40, 400, 4000):
            _, arrays = fmt.decode(coord.snapshot("fp"))
            c = coord.get_run("fp").competence
            errors.append((np.abs(arrays["core_d"] - d_star).max(), abs(c - c_star)))
    (d40, _c40), (d400, _c400), (d4000, c4000) = errors
    assert d4000 < d400 < d40
    assert d4000 < 1e-5
    assert c4000 < 1e-7
