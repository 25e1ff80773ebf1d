"""A math reward function for OpenRLHF: ``--reward.remote_url <path of this file>``.

OpenRLHF loads ``reward_func(queries, prompts, labels)`` from a Python file and calls it in a
worker thread for each response (``queries`` holds prompt + response as decoded text). The grade is
``cdas_rollout.grading``'s: math-verify compares the response's final answer with the label (the
dataset's ground truth, ``--data.label_key``), 1.0 when equal, else 0.0. ``scores`` (what dynamic
filtering and the coordinator read) equals ``rewards``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from cdas_rollout.grading import grade


def reward_func(
    queries: Sequence[str], prompts: Sequence[str], labels: Sequence[Any]
) -> dict[str, Any]:
    values = []
    for query, prompt, label in zip(queries, prompts, labels, strict=True):
        response = query[len(prompt) :] if query.startswith(prompt) else query
        values.append(grade(response, str(label)))
    rewards = torch.tensor(values, dtype=torch.float32)
    return {"rewards": rewards, "scores": rewards, "extra_logs": {"correct": rewards}}
