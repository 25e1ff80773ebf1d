"""Learnability sampling (LILO: Foster et al., "Learning to Reason at the Frontier of Learnability",
arXiv 2502.12272): prefer the prompts with the largest p(1 - p).

p(1 - p) is the variance of a rollout's 0/1 reward, largest at p = 1/2 and 0 for prompts always or
never solved, which give GRPO no gradient. As in LILO, a candidate pool of ``candidates`` x B
prompts (default 4) is drawn uniformly (within an epoch) and the B with the largest estimated p(1 -
p) are kept, ties broken uniformly at random. LILO estimates p with fresh rollouts of every
candidate; the coordinator uses the prompt's latest pass rate instead, and p = 1/2 (the largest
score) for prompts without results, so unseen prompts are explored first. O(candidates * B) per
step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from cdas.core.params import Param, integer
from cdas.core.randomness import tie_keys
from cdas.core.strategies.base import IntArray, Request, register
from cdas.core.strategies.pooled import PooledStrategy

if TYPE_CHECKING:
    from cdas.core.engine import RunView


@register
class Learnability(PooledStrategy):
    name = "learnability"
    params = (Param("candidates", 4, integer(1, 1024), "candidate pool size, in multiples of B"),)

    def select(self, view: RunView, request: Request) -> IntArray:
        cand = self.candidates(view, request, int(self.config["candidates"]))
        rows = view.rows(cand)
        p = np.where(np.isnan(rows.last_pass_rate), 0.5, rows.last_pass_rate)
        order = np.lexsort((tie_keys(self.seed, cand, rows.t), -(p * (1.0 - p))))
        return cand[order[: request.size]]
