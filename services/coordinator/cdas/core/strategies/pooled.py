"""Strategies that draw from a uniform pool with epochs: random and dynamic sampling, and the
candidate pools of MoPPS and learnability.

Candidates: each step draws ``factor * B`` distinct prompts uniformly without replacement within an
epoch (capped at the prompts available), as the MoPPS and LILO trainers do with their data loaders;
the strategy then keeps the B best-scoring ones. O(factor * B).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from cdas.core.arrays import unique_sorted
from cdas.core.strategies.base import Arrays, FloatArray, IntArray, Request, Strategy

if TYPE_CHECKING:
    from cdas.core.engine import RunView
    from cdas.core.space import RunSpace


class PooledStrategy(Strategy):
    """A strategy owning one uniform pool of all prompts (saved in snapshots)."""

    def __init__(self, params: dict[str, Any], seed: int, space: RunSpace) -> None:
        super().__init__(params, seed, space)
        self.pool = space.pool("pool")

    def add(self, view: RunView, start: int, stop: int, labels: FloatArray | None) -> None:
        self.pool.add(np.arange(start, stop, dtype=np.int64))

    def candidates(self, view: RunView, request: Request, factor: int) -> IntArray:
        """``factor * B`` distinct candidates (capped), uniformly within the pool's epoch."""
        available = view.n - unique_sorted(request.exclude).size
        k = min(factor * request.size, available)
        return self.pool.draw(k, request.rng, exclude=request.exclude, epochs=True)

    def dump(self) -> Arrays:
        return {f"pool_{k}": v for k, v in self.pool.to_arrays().items()}

    def load(self, view: RunView, core: Arrays, own: Arrays) -> None:
        self.pool.load({"items": own["pool_items"], "counters": own["pool_counters"]})
