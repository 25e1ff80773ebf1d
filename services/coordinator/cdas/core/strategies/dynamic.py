"""DAPO dynamic sampling: random prompts, over-sampled, in rounds within a step.

The trainer asks for a generation batch (DAPO: 3x the train batch) as round 0 of a step, filters out
the groups whose rewards have zero variance, and asks for round 1, 2, ... of the same step until it
has B informative groups. The coordinator serves each round uniformly at random (epochs as in
``random``), never repeating a prompt within a step, and counts every rollout posted for the step,
since that cost is what dynamic sampling is compared on. ``max_rounds`` (DAPO: 10) caps the rounds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cdas.core.errors import InvalidArgumentError
from cdas.core.params import Param, integer
from cdas.core.strategies.base import IntArray, register
from cdas.core.strategies.random_sampling import RandomSampling

if TYPE_CHECKING:
    from cdas.core.engine import RunView


@register
class DynamicSampling(RandomSampling):
    name = "dynamic"
    params = (Param("max_rounds", 10, integer(1, 1000), "rounds allowed per step (DAPO: 10)"),)

    def check_request(
        self, view: RunView, step: int, round_: int, size: int, exclude: IntArray
    ) -> None:
        limit = int(self.config["max_rounds"])
        if round_ >= limit:
            raise InvalidArgumentError(
                f"round {round_} of step {step} exceeds max_rounds {limit} "
                f"(rounds are 0..{limit - 1})",
                field="round",
                value=round_,
            )
