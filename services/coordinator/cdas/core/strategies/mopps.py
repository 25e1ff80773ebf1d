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

from typing import TYPE_CHECKING, Any

import numpy as np

from cdas.core.params import Param, integer, number
from cdas.core.strategies.base import Arrays, FloatArray, IntArray, Request, Update, register
from cdas.core.strategies.pooled import PooledStrategy

if TYPE_CHECKING:
    from cdas.core.engine import RunView
    from cdas.core.space import RunSpace


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

    def __init__(self, params: dict[str, Any], seed: int, space: RunSpace) -> None:
        super().__init__(params, seed, space)
        self.alpha = space.float_array("alpha")
        self.beta = space.float_array("beta")

    def add(self, view: RunView, start: int, stop: int, labels: FloatArray | None) -> None:
        self.alpha.append(np.full(stop - start, float(self.config["prior_alpha"])))
        self.beta.append(np.full(stop - start, float(self.config["prior_beta"])))
        super().add(view, start, stop, labels)

    def select(self, view: RunView, request: Request) -> IntArray:
        cand = self.candidates(view, request, int(self.config["candidates"]))
        theta = request.rng.beta(self.alpha.get(cand), self.beta.get(cand))
        order = np.argsort(np.abs(theta - self.config["target"]), kind="stable")
        return cand[order[: request.size]]

    def observe(self, view: RunView, update: Update) -> None:
        lam = float(self.config["decay"])
        k = update.pass_rate * update.total
        idx = update.idx
        alpha = lam * self.alpha.get(idx) + (1 - lam) * self.config["prior_alpha"] + k
        beta = lam * self.beta.get(idx) + (1 - lam) * self.config["prior_beta"] + (update.total - k)
        self.alpha.set(idx, alpha)
        self.beta.set(idx, beta)

    def dump(self) -> Arrays:
        return {"alpha": self.alpha.dump(), "beta": self.beta.dump(), **super().dump()}

    def load(self, view: RunView, core: Arrays, own: Arrays) -> None:
        self.alpha.append(np.asarray(own["alpha"], dtype=np.float64))
        self.beta.append(np.asarray(own["beta"], dtype=np.float64))
        super().load(view, core, own)
