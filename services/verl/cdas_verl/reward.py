"""The math reward for verl: ``reward.custom_reward_function.path=pkg://cdas_verl.reward``.

verl's default reward (``verl.utils.reward_score.default_compute_score``) picks a scorer by each
row's ``data_source`` and refuses math12k's (``qwen_remove``). This one grades every row the same
way, with the grader the OpenRLHF integration and the rollout worker use
(``cdas_rollout.grading.grade``): math-verify compares the response's last ``\\boxed{}`` with
``reward_model.ground_truth``, 1.0 when mathematically equal, else 0.0, never raising. verl may
call it in worker threads (the reward loop's executor), where ``grade`` bounds the work by length
instead of ``signal.alarm``, which works only in the main thread (verl's own math-verify scorer
scores every answer 0.0 there).

cdas-rollout comes without its dependencies (``pip install --no-deps ./services/rollout``): it pins
math-verify's antlr4 4.13.2 runtime, and verl's Hydra needs 4.9.3, which
``math-verify[antlr4_9_3]`` uses (services/verl/Dockerfile).
"""

from __future__ import annotations

from typing import Any

from cdas_rollout.grading import grade


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: Any = None,
    **kwargs: Any,
) -> float:
    """verl's ``compute_score(data_source, solution_str, ground_truth, extra_info)``."""
    return grade(solution_str, str(ground_truth))
