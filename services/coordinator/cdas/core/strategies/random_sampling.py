"""Random sampling: uniform without replacement within an epoch (plain GRPO data loading).

Each epoch visits every prompt once in random order; a batch that crosses an epoch boundary takes
the rest of the epoch and starts the next one, never repeating a prompt within the batch. O(B).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cdas.core.strategies.base import IntArray, Request, register
from cdas.core.strategies.pooled import PooledStrategy

if TYPE_CHECKING:
    from cdas.core.engine import RunView


@register
class RandomSampling(PooledStrategy):
    name = "random"

    def select(self, view: RunView, request: Request) -> IntArray:
        return self.pool.draw(request.size, request.rng, exclude=request.exclude, epochs=True)
