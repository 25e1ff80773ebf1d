"""Strategies that draw from a uniform pool with epochs: random and dynamic sampling, and the
candidate pools of MoPPS and learnability.

Candidates: each step draws ``factor * B`` distinct prompts uniformly without replacement within an
epoch (capped at the prompts available), as the MoPPS and LILO trainers do with their data loaders;
the strategy then keeps the B best-scoring ones. O(factor * B).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cdas.core.arrays import unique_sorted
from cdas.core.state import RunCore
from cdas.core.strategies.base import Arrays, IntArray, Request, Strategy
from cdas.core.structures.pool import UniformPool


class PooledStrategy(Strategy):
    """A strategy owning one ``UniformPool`` of all prompts (saved in snapshots)."""

    def __init__(self, params: dict[str, Any], seed: int) -> None:
        super().__init__(params, seed)
        self.pool = UniformPool()

    def add(self, core: RunCore, start: int, stop: int) -> None:
        self.pool.add(np.arange(start, stop, dtype=np.int64))

    def candidates(self, core: RunCore, request: Request, factor: int) -> IntArray:
        """``factor * B`` distinct candidates (capped), uniformly within the pool's epoch."""
        available = core.n - unique_sorted(request.exclude).size
        k = min(factor * request.size, available)
        return self.pool.draw(k, request.rng, exclude=request.exclude, epochs=True)

    def arrays(self) -> Arrays:
        return {f"pool_{k}": v for k, v in self.pool.to_arrays().items()}

    def restore(self, core: RunCore, arrays: Arrays) -> None:
        self.pool = UniformPool.from_arrays(
            {"items": arrays["pool_items"], "counters": arrays["pool_counters"]}, core.n
        )
