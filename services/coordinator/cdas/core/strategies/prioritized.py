"""Prioritized sampling (Kimi k1.5): weight 1 - s, with s the prompt's latest pass rate.

Sampling is without replacement, proportional to the weight (successive sampling); never-seen
prompts have s = 0, weight 1; solved prompts (s = 1) have weight 0 and are drawn only when no
prompt with a positive weight is left. A sum tree makes a step O(B log N).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from cdas.core.strategies.base import (
    Arrays,
    FloatArray,
    IntArray,
    Request,
    Strategy,
    Update,
    register,
)

if TYPE_CHECKING:
    from cdas.core.engine import RunView
    from cdas.core.space import RunSpace


@register
class Prioritized(Strategy):
    name = "prioritized"

    def __init__(self, params: dict[str, Any], seed: int, space: RunSpace) -> None:
        super().__init__(params, seed, space)
        self.tree = space.sum_tree("weights")

    def weights(self, last_pass_rate: FloatArray) -> FloatArray:
        """1 - s, with s = 0 for prompts without results (NaN)."""
        return np.where(np.isnan(last_pass_rate), 1.0, 1.0 - last_pass_rate)

    def add(self, view: RunView, start: int, stop: int, labels: FloatArray | None) -> None:
        self.tree.grow(stop - start, np.ones(stop - start))

    def select(self, view: RunView, request: Request) -> IntArray:
        return self.tree.sample(request.size, request.rng, exclude=request.exclude)

    def observe(self, view: RunView, update: Update) -> None:
        self.tree.set(update.idx, self.weights(update.pass_rate))

    def load(self, view: RunView, core: Arrays, own: Arrays) -> None:
        self.tree.grow(view.n, self.weights(np.asarray(core["last_pass_rate"], dtype=np.float64)))
