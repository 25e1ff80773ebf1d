"""Prioritized sampling (Kimi k1.5): weight 1 - s, with s the prompt's latest pass rate.

Sampling is without replacement, proportional to the weight (successive sampling); never-seen
prompts have s = 0, weight 1; solved prompts (s = 1) have weight 0 and are drawn only when no
prompt with a positive weight is left. A sum tree makes a step O(B log N).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cdas.core.state import FloatArray, RunCore, Update
from cdas.core.strategies.base import Arrays, IntArray, Request, Strategy, register
from cdas.core.structures.sumtree import SumTree


@register
class Prioritized(Strategy):
    name = "prioritized"

    def __init__(self, params: dict[str, Any], seed: int) -> None:
        super().__init__(params, seed)
        self.tree = SumTree()

    def weights(self, last_pass_rate: FloatArray) -> FloatArray:
        """1 - s, with s = 0 for prompts without results (NaN)."""
        return np.where(np.isnan(last_pass_rate), 1.0, 1.0 - last_pass_rate)

    def add(self, core: RunCore, start: int, stop: int) -> None:
        self.tree.grow(stop - start, self.weights(core.last_pass_rate[start:stop]))

    def select(self, core: RunCore, request: Request) -> IntArray:
        return self.tree.sample(request.size, request.rng, exclude=request.exclude)

    def observe(self, core: RunCore, update: Update) -> None:
        self.tree.set(update.idx, self.weights(update.pass_rate))

    def restore(self, core: RunCore, arrays: Arrays) -> None:
        self.tree = SumTree()
        self.add(core, 0, core.n)
