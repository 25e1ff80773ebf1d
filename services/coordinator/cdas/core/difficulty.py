"""The mathematics of CDAS (Kong et al., AAAI 2026), exactly as ``shared/CDAS.md`` states it.

Notation of the paper. For prompt x after its t-th update at step n, with competence C_{n-1} when
the step's batch was issued and pass rate s_n(x):

    P(x)   = sigmoid(C_{n-1} - D(x))            expected performance (IRT / Elo)
    d_n(x) = P(x) - s_n(x)                      instantaneous difficulty, in (-1, 1)
    t(x)  <- t(x) + 1
    D(x)  <- D(x) + (d_n(x) - D(x)) / t(x)      running mean of the d's (first update: D = d)
    C_n    = -mean over all N prompts of D(x)   (never-updated prompts count with D = 0)

D stays in [-1, 1] (a mean of values in (-1, 1)), hence so does C. With stationary pass rates S the
iteration converges to the unique fixed point of equation (10),
``D*(x) = sigmoid(C* - D*(x)) - S(x)``, ``C* = -mean D*``.

A floor on the update's weight (CDAS's ``min_weight`` param, w0 in [0, 1], 0 by default and for
every other strategy) turns the running mean into an exponential moving average once it would move
slower than w0: ``D <- D + w (d - D)`` with ``w = max(1/t, w0)``. A running mean of 100 updates
moves by 1/100 of a change in how the policy does on the prompt; with w0 = 0.1 the difficulty
forgets at rate 0.1 and follows a prompt the policy learns. While 1/t >= w0 the update is the
paper's expression itself (bit for bit), so w0 = 0 is exactly the paper. D is still a convex
combination of values in [-1, 1], so the bounds hold.

Competence is kept incrementally and without drift: a run holds the sum of D as an exact integer
of fixed-point units (``fixed_sum``: round(D * 2**50) summed in Python integers), changed by the
difference of the old and new terms at each update, so no sequence of updates can make it drift
from a fresh recomputation; ``competence`` divides it with one rounding. The only error is the
2**-51 rounding of each D, far below 1e-12.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

FIXED_BITS = 50
"""D is held in the competence sum as round(D * 2**50); |D| <= 1 keeps each term below 2**50."""
FIXED_SCALE = float(2**FIXED_BITS)
_CHUNK = 4096  # |sum of 4096 terms| < 2**63: safe int64 partial sums


def expected_performance(C: FloatArray | float, D: FloatArray) -> FloatArray:
    """``sigmoid(C - D)``, elementwise."""
    return 1.0 / (1.0 + np.exp(D - C))


def updated_difficulty(
    D: FloatArray,
    t: npt.NDArray[np.int32],
    C: FloatArray | float,
    s: FloatArray,
    min_weight: float = 0.0,
) -> tuple[FloatArray, npt.NDArray[np.int32]]:
    """One CDAS update of prompts with difficulties ``D`` and update counts ``t``.

    ``C`` is the competence the update uses (per prompt or shared), ``s`` the pass rates,
    ``min_weight`` the floor w0 of the weight: ``D + (d - D) / t`` where 1/t >= w0 (the paper's
    running mean, always with w0 = 0), ``D + w0 (d - D)`` where 1/t < w0 (an exponential moving
    average). This is the one place of that rule. Returns the new (D, t). O(len(D)).
    """
    d = expected_performance(C, D) - s
    t_new = (t + 1).astype(np.int32)
    mean = D + (d - D) / t_new
    if min_weight <= 0.0:
        return mean, t_new
    return np.where(1.0 / t_new < min_weight, D + min_weight * (d - D), mean), t_new


def to_fixed(D: FloatArray) -> npt.NDArray[np.int64]:
    """round(D * 2**50) as int64 (exact scaling by a power of two, then round-half-even)."""
    return np.rint(D * FIXED_SCALE).astype(np.int64)


def fixed_sum(values: FloatArray) -> int:
    """sum(round(v * 2**50)) exactly, as a Python int (|v| <= 1). O(len)."""
    fixed = to_fixed(values)
    total = 0
    for start in range(0, fixed.size, _CHUNK):
        total += int(fixed[start : start + _CHUNK].sum())
    return total


def competence(sum_fixed: int, n: int) -> float:
    """C = -mean(D) from the exact fixed-point sum of D over ``n`` prompts (0 for no prompts)."""
    if n == 0:
        return 0.0
    # int / int is correctly rounded in Python, and the power-of-two scale is exact.
    return (-sum_fixed / n) / FIXED_SCALE
