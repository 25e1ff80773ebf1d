"""A small stand-in for GRPO training, enough to show what prompt selection does to a run.

Model: a scalar ability theta and a latent difficulty b per prompt; a rollout of prompt x succeeds
with probability p(x) = sigmoid(theta - b(x)). A share of the prompts is unsolvable (b = +inf) and a
share solved from the start (b = -inf). Each step the trainer rolls out G answers per prompt of the
batch; only groups with both right and wrong answers carry a gradient (GRPO's advantages vanish
otherwise), and the ability grows with their number: theta += rate * informative / B.

This is the quick start's toy. The calibrated training twin (held-out accuracy, transfer,
prompt-specific learning, GPU-time proxy) is ``cdas simulate``'s job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

import cdas


@dataclass
class ToyLearner:
    n: int
    seed: int = 0
    group: int = 8
    rate: float = 0.02
    unsolvable: float = 0.15
    trivial: float = 0.10
    theta: float = -0.5
    b: np.ndarray = field(init=False)
    rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        self.b = self.rng.normal(0.0, 1.5, self.n)
        kind = self.rng.random(self.n)
        self.b[kind < self.unsolvable] = np.inf
        self.b[kind > 1 - self.trivial] = -np.inf

    def accuracy(self) -> float:
        """Expected pass rate over all prompts: the run's 'benchmark' score."""
        return float(np.mean(1.0 / (1.0 + np.exp(self.b - self.theta))))

    def rollout(self, prompt_ids: list[str]) -> list[dict[str, Any]]:
        idx = np.array([int(p) for p in prompt_ids], dtype=np.int64)
        k = self.rng.binomial(self.group, 1.0 / (1.0 + np.exp(self.b[idx] - self.theta)))
        return [
            {"prompt_id": p, "correct": c, "total": self.group}
            for p, c in zip(prompt_ids, k.tolist(), strict=True)
        ]

    def learn(self, informative: int, batch: int) -> None:
        self.theta += self.rate * informative / batch


@dataclass
class RunSummary:
    strategy: str
    zero_gradient: float
    accuracy: float
    rollouts: int
    steps: int


def train(
    coord: cdas.Coordinator, run_id: str, learner: ToyLearner, steps: int, batch: int, rounds: bool
) -> RunSummary:
    """Drive one run for ``steps`` steps. With ``rounds`` (DAPO dynamic sampling), each step asks
    for 3B prompts per round until B informative groups are found (at most the run's max_rounds)."""
    info = coord.get_run(run_id)
    max_rounds = int(info.params.get("max_rounds", 1)) if rounds else 1
    for step in range(1, steps + 1):
        informative = 0
        for round_ in range(max_rounds):
            left = info.size - round_ * 3 * batch if rounds else info.size
            size = min(3 * batch if rounds else batch, left)
            if size < 1:
                break
            issued = coord.next_batch(run_id, step, size, round=round_)
            results = learner.rollout(issued.prompt_ids)
            coord.report_results(run_id, step, results)
            informative += sum(1 for r in results if 0 < r["correct"] < r["total"])
            if not rounds or informative >= batch:
                break
        learner.learn(min(informative, batch), batch)
    state = coord.get_state(run_id)
    shares = [h.zero_gradient_ratio for h in state.history if h.zero_gradient_ratio is not None]
    return RunSummary(
        strategy=info.strategy,
        zero_gradient=float(np.mean(shares)),
        accuracy=learner.accuracy(),
        rollouts=sum(h.rollouts for h in state.history),
        steps=steps,
    )
