"""MoPPS, Model Predictive Prompt Selection (Qu et al., arXiv 2507.04632).

Each prompt's success probability has a Beta(alpha, beta) posterior, prior Beta(a0, b0). After a
group with k successes out of G rollouts (k = s * G):

    alpha <- lambda * alpha + (1 - lambda) * a0 + k
    beta  <- lambda * beta  + (1 - lambda) * b0 + (G - k)

(``decay`` lambda in (0, 1], 1 = no forgetting; applied when the prompt is updated, as in the
authors' code). Selection: a candidate pool of ``candidates`` x B prompts drawn uniformly (within
an epoch), one Thompson sample theta ~ Beta(alpha, beta) per candidate, and the B candidates whose
theta is closest to ``target`` (default 0.5). O(candidates * B) per step.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cdas.core.params import Param, integer, number
from cdas.core.state import RunCore, Update, grow_array
from cdas.core.strategies.base import Arrays, IntArray, Request, register
from cdas.core.strategies.pooled import PooledStrategy


@register
class Mopps(PooledStrategy):
    name = "mopps"
    params = (
        Param("prior_alpha", 1.0, number(1e-6, 1e6), "alpha of the Beta prior"),
        Param("prior_beta", 1.0, number(1e-6, 1e6), "beta of the Beta prior"),
        Param("decay", 1.0, number(1e-6, 1.0), "lambda: weight kept by the posterior per update"),
        Param("target", 0.5, number(0.0, 1.0), "success probability the selection aims at"),
        Param("candidates", 16, integer(1, 1024), "candidate pool size, in multiples of B"),
    )

    def __init__(self, params: dict[str, Any], seed: int) -> None:
        super().__init__(params, seed)
        self.alpha = np.zeros(0, dtype=np.float64)
        self.beta = np.zeros(0, dtype=np.float64)

    def add(self, core: RunCore, start: int, stop: int) -> None:
        self.alpha = grow_array(self.alpha, stop, 0.0)
        self.beta = grow_array(self.beta, stop, 0.0)
        self.alpha[start:stop] = self.config["prior_alpha"]
        self.beta[start:stop] = self.config["prior_beta"]
        super().add(core, start, stop)

    def select(self, core: RunCore, request: Request) -> IntArray:
        cand = self.candidates(core, request, int(self.config["candidates"]))
        theta = request.rng.beta(self.alpha[cand], self.beta[cand])
        order = np.argsort(np.abs(theta - self.config["target"]), kind="stable")
        return cand[order[: request.size]]

    def observe(self, core: RunCore, update: Update) -> None:
        lam = float(self.config["decay"])
        k = update.pass_rate * update.total
        idx = update.idx
        self.alpha[idx] = lam * self.alpha[idx] + (1 - lam) * self.config["prior_alpha"] + k
        self.beta[idx] = (
            lam * self.beta[idx] + (1 - lam) * self.config["prior_beta"] + (update.total - k)
        )

    def arrays(self) -> Arrays:
        n = self.pool.size
        return {
            "alpha": self.alpha[:n].copy(),
            "beta": self.beta[:n].copy(),
            **super().arrays(),
        }

    def restore(self, core: RunCore, arrays: Arrays) -> None:
        self.alpha = np.asarray(arrays["alpha"], dtype=np.float64).copy()
        self.beta = np.asarray(arrays["beta"], dtype=np.float64).copy()
        super().restore(core, arrays)
