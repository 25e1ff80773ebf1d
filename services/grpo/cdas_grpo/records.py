"""What one GRPO step did, measured: the simulator's columns plus what only a real policy has.

``GrpoStep`` extends ``cdas.sim.trainer.StepRecord``, so the simulator's table and plots read it
as they read a twin's step. Two columns change meaning: ``cost`` is the step's measured wall-clock
time in hours on the device that ran it (generation, checking, the update and the coordinator
calls; the evaluation is not counted), and ``accuracy`` is the exact expected accuracy of one
sample at temperature 1 on the held-out prompts after the step (``policy_ops.exact_accuracy``).
``signal`` is the twin's: the trained groups' normalized reward variance 4k(G-k)/G^2, summed, / B.
"""

from __future__ import annotations

from dataclasses import dataclass

from cdas.sim.trainer import StepRecord


@dataclass(frozen=True, slots=True)
class GrpoStep(StepRecord):
    seconds: float = 0.0
    """the step's wall-clock seconds (``cost`` x 3600)"""
    entropy: float = 0.0
    """mean per-token entropy of the trained rollouts, in nats (the policy's confidence)"""
    train_accuracy: float = 0.0
    """exact expected accuracy on a fixed sample of training prompts (``probe``) after the step:
    its gap to the held-out accuracy is what the policy learnt of the training prompts alone"""
